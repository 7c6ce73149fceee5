"""Harness of the SQLite acceptance tests: child processes of the worker app, one run
crashed and recovered by one process after another, and reads of the database between
them.

Before it launches each process the harness reads which checkpoints had committed
(the previous process is dead by then, so that is the exact state the new one
finds): :func:`tests.acceptance.effects.check_run` then allows each process only
the steps not yet committed when it started, each at most once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import durably
from durably import crashpoints
from tests.acceptance.effects import SIGNALLED, STARTED, Process, read_effects

REPO_ROOT = Path(__file__).resolve().parents[2]
SRC = REPO_ROOT / "src"


# -- child processes ---------------------------------------------------------------
@dataclass(frozen=True)
class ChildResult:
    """How a child process ended, and what it printed."""

    args: tuple[str, ...]
    pid: int
    returncode: int
    stdout: str
    stderr: str

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL

    def json(self) -> dict[str, Any]:
        """The JSON object on the last line of stdout."""
        lines = self.stdout.strip().splitlines()
        assert lines, f"child printed nothing\n{self.describe()}"
        value: dict[str, Any] = json.loads(lines[-1])
        return value

    def describe(self) -> str:
        return (
            f"command: {' '.join(self.args)}\npid {self.pid}, exit {self.returncode}\n"
            f"--- stdout ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-3000:]}"
        )


def environment() -> dict[str, str]:
    """A copy of ``os.environ``, made safely off pytest's main thread (the sweeps run
    their cases on threads): pytest sets and deletes ``PYTEST_CURRENT_TEST`` meanwhile,
    and a copy that saw it go fails with KeyError; another try sees it settled."""
    while True:
        try:
            return dict(os.environ)
        except (KeyError, RuntimeError):
            continue


def child_env(crash_at: str | None = None) -> dict[str, str]:
    """The environment of a child: the repo importable, a crash point armed or not."""
    env = environment()
    env.pop(crashpoints.ENV, None)
    paths = [str(REPO_ROOT), str(SRC), *filter(None, env.get("PYTHONPATH", "").split(":"))]
    env["PYTHONPATH"] = ":".join(paths)
    if crash_at is not None:
        env[crashpoints.ENV] = crash_at
    return env


def without_file_override() -> list[str]:
    """A command prefix that makes a root child obey file permissions (empty otherwise).

    Root ignores mode bits (CAP_DAC_OVERRIDE), so a chmod-ed file would not be
    read-only to it. Dropping the two capabilities from the bounding set before
    exec affects that one child only.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return []
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]


class Child:
    """A running child process of the worker app (``python -m tests.acceptance.app``)."""

    def __init__(
        self,
        app_args: Sequence[str],
        *,
        crash_at: str | None = None,
        prefix: Sequence[str] = (),
        cwd: Path | None = None,
    ) -> None:
        self.args = (*prefix, sys.executable, "-m", "tests.acceptance.app", *app_args)
        self.proc = subprocess.Popen(
            self.args,
            env=child_env(crash_at),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.pid = self.proc.pid

    def wait(self, timeout: float = 60.0) -> ChildResult:
        """Wait for the child to exit (and reap it); kill it and fail if it takes too long."""
        try:
            stdout, stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            stdout, stderr = self.proc.communicate()
            result = ChildResult(self.args, self.pid, self.proc.returncode, stdout, stderr)
            raise AssertionError(
                f"child did not exit within {timeout:g}s\n{result.describe()}"
            ) from None
        return ChildResult(self.args, self.pid, self.proc.returncode, stdout, stderr)


def run_app(
    app_args: Sequence[str],
    *,
    crash_at: str | None = None,
    timeout: float = 60.0,
    prefix: Sequence[str] = (),
) -> ChildResult:
    """Run the worker app to its end."""
    return Child(app_args, crash_at=crash_at, prefix=prefix).wait(timeout)


def assert_killed(result: ChildResult, crash_at: str) -> None:
    """The child must have died by SIGKILL at its armed crash point."""
    assert result.returncode != 0, (
        f"crash point {crash_at} was never hit: the child finished normally\n{result.describe()}"
    )
    assert result.killed, f"child armed with {crash_at} did not die by SIGKILL\n{result.describe()}"


def assert_clean_exit(result: ChildResult) -> None:
    """Exit 0 and nothing alarming on stderr: no traceback, no lock error, no error log."""
    assert result.returncode == 0, f"child failed\n{result.describe()}"
    alarming = [
        line
        for line in result.stderr.splitlines()
        if any(word in line for word in ("Traceback", "Error", "locked", "busy", "ERROR"))
    ]
    assert not alarming, f"child stderr is not clean: {alarming[:5]}\n{result.describe()}"


# -- one run, crashed and recovered -----------------------------------------------
@dataclass(frozen=True)
class Scenario:
    """One run of a workflow of the worker app, and how its processes are started."""

    kind: str  # a key of tests.acceptance.app.WORKFLOWS
    run_id: str
    queued: bool = False  # the first process starts it with the executor stopped
    signal: bool = False  # the run waits for app.SIGNAL: the first process sends it
    children: bool = False  # the checkpoints of the run's child runs count as its own

    def run_args(self, db: Path, effects: Path) -> list[str]:
        args = ["--db", str(db), "--effects", str(effects), "run", "--kind", self.kind]
        args += ["--run-id", self.run_id]
        return args + ["--queued"] * self.queued + ["--signal"] * self.signal

    def recover_args(self, db: Path, effects: Path) -> list[str]:
        args = ["--db", str(db), "--effects", str(effects), "recover", "--kind", self.kind]
        args += ["--run-id", self.run_id]
        # A signal is sent again only if no earlier process got as far as sending it.
        sent = any(e.run == self.run_id and e.step == SIGNALLED for e in read_effects(effects))
        return args + ["--signal"] * (self.signal and not sent)


@dataclass
class Outcome:
    """The processes of one crash-and-recover sequence."""

    crashed: ChildResult  # the last process killed
    recovered: ChildResult  # the process that finished the run
    processes: list[Process]
    committed_after_crash: frozenset[str] | None  # None: the run did not exist


def crash_and_recover(workdir: Path, scenario: Scenario, crash_specs: Sequence[str]) -> Outcome:
    """Start the run in a process killed at the first spec, recover it in one process
    per further spec (each killed there too), then in one that must finish it.

    Between processes (none is running then) the journal is read, so each
    process's :class:`Process` knows which checkpoints had committed before it.
    """
    db, effects = workdir / "durably.db", workdir / "effects.log"
    processes: list[Process] = []
    committed: frozenset[str] | None = frozenset()
    crashed: ChildResult | None = None
    for i, spec in enumerate(crash_specs):
        args = scenario.run_args(db, effects) if i == 0 else scenario.recover_args(db, effects)
        crashed = run_app(args, crash_at=spec, timeout=30)
        assert_killed(crashed, spec)
        processes.append(Process(crashed.pid, committed or frozenset(), killed=True))
        committed = committed_steps(db, scenario.run_id, scenario.children)
        if any(e.step == STARTED and e.pid == crashed.pid for e in read_effects(effects)):
            # G1 starts here: start_workflow returned, so the run must be durable.
            assert committed is not None, f"run {scenario.run_id} vanished after its start"
    assert crashed is not None, "at least one crash spec is needed"
    recovered = run_app(scenario.recover_args(db, effects), timeout=30)
    processes.append(Process(recovered.pid, committed or frozenset()))
    return Outcome(crashed, recovered, processes, committed)


def selected_params(request: Any, name: str) -> list[Any]:
    """The values of parameter ``name`` of this module's tests selected to run."""
    return [
        item.callspec.params[name]
        for item in request.session.items
        if getattr(item, "module", None) is request.module
        and name in getattr(getattr(item, "callspec", None), "params", {})
    ]


# -- reading the database between processes ---------------------------------------
@contextmanager
def reader(db: Path) -> Iterator[durably.Engine]:
    """An engine on ``db`` that only reads: its executor is never launched."""
    engine = durably.Engine(str(db))
    try:
        yield engine
    finally:
        engine.close()


def committed_steps(db: Path, run_id: str, children: bool = False) -> frozenset[str] | None:
    """Names of the steps of the run (and of its children, with ``children``) whose
    checkpoint committed; ``None`` if the run does not exist.

    Call only while no process has the database open for work: the engine
    opened here does not execute anything.
    """
    names: set[str] = set()
    with reader(db) as engine:
        try:
            engine.get_run(run_id)
        except durably.RunNotFound:
            return None
        kids = [r.run_id for r in engine.list_runs(limit=10_000) if r.parent_id == run_id]
        for rid in [run_id, *(kids if children else [])]:
            names.update(
                s.name for s in engine.steps(rid) if s.kind == "step" and s.status == "completed"
            )
    return frozenset(names)


def run_statuses(db: Path, run_ids: Iterable[str]) -> dict[str, durably.RunStatus | None]:
    statuses: dict[str, durably.RunStatus | None] = {}
    with reader(db) as engine:
        for run_id in run_ids:
            try:
                statuses[run_id] = engine.get_run(run_id).status
            except durably.RunNotFound:
                statuses[run_id] = None
    return statuses


def integrity_check(db: Path) -> str:
    """SQLite's own verdict on the file (``"ok"`` when sound)."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()
    return "\n".join(str(r[0]) for r in rows)
