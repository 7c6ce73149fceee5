"""crash_sweep's ``mode="process"``: the execution in a child process that SIGKILLs
itself at the crash point (``python -m durably.testing.child``)."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
from typing import Any

from durably import crashpoints
from durably.hooks import StepStarted, Subscriber
from durably.registry import Workflow
from durably.testing.clock import VirtualClock
from durably.testing.engine import TestEngine
from durably.testing.passes import Passes

#: Real seconds the child may take to reach its crash point or end.
CHILD_TIMEOUT = 120.0


def crash_in_child(
    workflow: Workflow[..., Any],
    call: tuple[Any, Any],
    path: str,
    clock: VirtualClock,
    target: tuple[str, int],
) -> tuple[str, str | None]:
    """Start ``workflow(*args, **kwargs)`` (``call``) on the SQLite file ``path``,
    executing nothing here, and let a child execute it until it dies at the
    ``target``-th pass of a crash point; the run's id, and the step in progress when
    the child was killed there (``""`` between steps), or None if it ended first."""
    module = workflow.fn.__module__
    if module == "__main__":
        raise ValueError(
            "crash_sweep(mode='process') needs the workflow in an importable module, "
            "not __main__: the child process imports it"
        )
    client = TestEngine(path, clock=clock, execute=False)
    try:
        run_id = client.start_workflow(workflow, *call[0], **call[1])
    finally:
        client.close()
    name, count = target
    command = [sys.executable, "-m", "durably.testing.child", path, module]
    command += [run_id.run_id, name, str(count), repr(clock.time())]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p or "." for p in sys.path)}
    done = subprocess.run(command, env=env, capture_output=True, timeout=CHILD_TIMEOUT)
    if done.returncode not in (0, -signal.SIGKILL):
        raise RuntimeError(f"the crash_sweep child failed:\n{done.stderr.decode()}")
    if done.returncode == 0:
        return run_id.run_id, None
    return run_id.run_id, done.stdout.decode().strip().rpartition("\n")[2]


def main(path: str, module: str, run_id: str, name: str, count: str, now: str) -> None:
    importlib.import_module(module)  # registers the workflow
    steps = _Steps()

    def crash(_: str) -> None:
        print(steps.current or "", flush=True)  # the step in progress, for the report
        os.kill(os.getpid(), signal.SIGKILL)

    passes = Passes((name, int(count)), crash)
    with crashpoints.watching(passes.hear):  # before the engine claims the run
        engine = TestEngine(path, clock=VirtualClock(float(now)), launch=False)
        engine.hooks.subscribe(steps)  # before it executes anything
        engine.launch()
        engine.handle(run_id).result(timeout=CHILD_TIMEOUT)
    engine.close()


class _Steps(Subscriber):
    def __init__(self) -> None:
        self.current: str | None = None

    def step_started(self, event: StepStarted) -> None:
        self.current = event.step


if __name__ == "__main__":
    main(*sys.argv[1:])
