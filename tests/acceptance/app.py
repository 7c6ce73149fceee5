"""The worker program the acceptance tests run in child processes.

Run as ``python -m tests.acceptance.app --db DB --effects LOG COMMAND ...``.
Step bodies append one line per execution to the effect log (see
:mod:`tests.acceptance.harness`); the command prints one JSON object on the
last line of stdout. With ``DURABLY_CRASH_AT`` set the process SIGKILLs itself
at that crash point.

Commands:
    run      start one run and wait for it (``--queued``: start it with the
             executor stopped, then launch, so the run goes through a claim)
    recover  wait for an existing run (start it if it was never created)
    batch    start ``--count`` runs of the 3-step workflow and wait for them all
    drain    execute runs until every run with a given prefix has ended
    race     start the given ids/keys (after a barrier) and wait for them all
    probe    open the store, read one run, start one: report the first error
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import durably
from tests.acceptance import effects

#: Where step bodies record their executions; ``None`` records nothing.
effect_log: str | None = None

#: The 5-step workflows' step names, in call order (the journal must match).
STEP_NAMES = tuple(f"step{i}" for i in range(1, 6))
THREE_STEP_NAMES = ("a", "b", "c")

SYNC5 = "acceptance.sync5"
ASYNC5 = "acceptance.async5"
SYNC3 = "acceptance.sync3"
ASYNC3 = "acceptance.async3"
SEED = 7  # the input of single-run commands, so every crash case has one expected output
#: Longer than any test waits: a dead process's run comes back only through the same-host
#: check of its pid, never by its lease running out (which would also be far too slow).
LEASE = 600.0


def record(run: str, step: str) -> None:
    """Append this execution of ``step`` (or a mark) to the effect log."""
    effects.record(effect_log, "mark" if step in effects.MARKERS else "start", run, step)


def value_of(step_index: int, previous: int) -> int:
    """The deterministic result of step ``step_index`` given the previous value."""
    return previous * 3 + step_index


def expected_output(seed: int, steps: int = 5) -> list[int]:
    values = [seed]
    for i in range(1, steps + 1):
        values.append(value_of(i, values[-1]))
    return values


def _sync_step(name: str, index: int) -> durably.Step[[str, int], int]:
    @durably.step(name=name, retries=0)
    def body(run: str, previous: int) -> int:
        record(run, name)
        return value_of(index, previous)

    return body


def _async_step(name: str, index: int) -> durably.Step[[str, int], Coroutine[Any, Any, int]]:
    @durably.step(name=name, retries=0)
    async def body(run: str, previous: int) -> int:
        await asyncio.sleep(0)
        record(run, name)
        return value_of(index, previous)

    return body


SYNC_STEPS = [_sync_step(name, i) for i, name in enumerate(STEP_NAMES, start=1)]
ASYNC_STEPS = [_async_step(name, i) for i, name in enumerate(STEP_NAMES, start=1)]
SYNC_STEPS3 = [_sync_step(name, i) for i, name in enumerate(THREE_STEP_NAMES, start=1)]
ASYNC_STEPS3 = [_async_step(name, i) for i, name in enumerate(THREE_STEP_NAMES, start=1)]


@durably.workflow(name=SYNC5)
def sync5(run: str, seed: int) -> list[int]:
    values = [seed]
    for step in SYNC_STEPS:
        values.append(step(run, values[-1]))
    return values


@durably.workflow(name=ASYNC5)
async def async5(run: str, seed: int) -> list[int]:
    values = [seed]
    for step in ASYNC_STEPS:
        values.append(await step(run, values[-1]))
    return values


@durably.workflow(name=SYNC3)
def sync3(run: str, seed: int, pad: str = "") -> list[int]:
    values = [seed]
    for step in SYNC_STEPS3:
        values.append(step(run, values[-1]))
    return values


@durably.workflow(name=ASYNC3)
async def async3(run: str, seed: int, pad: str = "") -> list[int]:
    values = [seed]
    for step in ASYNC_STEPS3:
        values.append(await step(run, values[-1]))
    return values


# -- a workflow around every primitive that suspends ------------------------------------
MIXED_STEPS = ("m1", "m2", "m3", "m4")
CHILD_STEP = "mchild"
SIGNAL, PAYLOAD = "go", 5
#: Longer than the engine keeps a sleeping run resident: the run is released and
#: re-claimed when the timer is due.
SLEEP = 1.1

M1, M2, M3, M4 = (_sync_step(name, i) for i, name in enumerate(MIXED_STEPS, start=1))
AM1, AM2, AM3, AM4 = (_async_step(name, i) for i, name in enumerate(MIXED_STEPS, start=1))
MCHILD, AMCHILD = _sync_step(CHILD_STEP, 9), _async_step(CHILD_STEP, 9)


def child_tag(run: str) -> str:
    """The effect-log name of a mixed run's child."""
    return f"{run}.child"


@durably.workflow(name="acceptance.mixed.child")
def mixed_child(run: str, value: int) -> int:
    return MCHILD(child_tag(run), value)


@durably.workflow(name="acceptance.mixed.child_async")
async def mixed_child_async(run: str, value: int) -> int:
    return await AMCHILD(child_tag(run), value)


@durably.workflow(name="acceptance.mixed")
def mixed(run: str, seed: int) -> list[int]:
    """A step, a durable sleep, a step, a signal, a step, a child run, a step."""
    a = M1(run, seed)
    durably.sleep(SLEEP)
    b = M2(run, a)
    got = durably.wait_for_signal(SIGNAL, timeout="60s")
    c = M3(run, b + got)
    d = durably.start_child(mixed_child, run, c).result()
    return [a, b, got, c, d, M4(run, d)]


@durably.workflow(name="acceptance.mixed_async")
async def mixed_async(run: str, seed: int) -> list[int]:
    a = await AM1(run, seed)
    await durably.sleep_async(SLEEP)
    b = await AM2(run, a)
    got = await durably.wait_for_signal_async(SIGNAL, timeout="60s")
    c = await AM3(run, b + got)
    child = await durably.start_child_async(mixed_child_async, run, c)
    # durably types an async child's result as its coroutine (R of the function): cast
    d = await child.result_async()
    return [a, b, got, c, d, await AM4(run, d)]


def expected_mixed(seed: int) -> list[int]:
    a = value_of(1, seed)
    b = value_of(2, a)
    c = value_of(3, b + PAYLOAD)
    d = value_of(9, c)
    return [a, b, PAYLOAD, c, d, value_of(4, d)]


WORKFLOWS: dict[str, durably.Workflow[..., Any]] = {
    "sync": sync5,
    "async": async5,
    "sync3": sync3,
    "async3": async3,
    "mixed-sync": mixed,
    "mixed-async": mixed_async,
}


def seed_of(run: str) -> int:
    """A deterministic seed per run id, so outputs differ between runs."""
    return sum(run.encode()) % 1000


# -- commands ---------------------------------------------------------------------------
def _emit(payload: dict[str, Any]) -> None:
    payload["pid"] = os.getpid()
    print(json.dumps(payload), flush=True)


def cmd_run(args: argparse.Namespace) -> None:
    wf = WORKFLOWS[args.kind]
    engine = durably.Engine(args.db, lease=LEASE)
    try:
        if not args.queued:
            engine.launch()  # the in-process fast path: created already claimed
        handle = engine.with_options(run_id=args.run_id).start_workflow(wf, args.run_id, args.seed)
        record(args.run_id, "__started__")
        if args.signal:
            _signal(engine, args.run_id)
        if args.queued:
            engine.launch()  # the run is pending: the executor must claim it
        output = handle.result(timeout=args.timeout)
    finally:
        engine.close()
    _emit({"output": output})


def _signal(engine: durably.Engine, run_id: str) -> None:
    engine.send_signal(run_id, SIGNAL, PAYLOAD)
    record(run_id, "__signalled__")  # harness.SIGNALLED


def cmd_recover(args: argparse.Namespace) -> None:
    wf = WORKFLOWS[args.kind]
    with durably.Engine(args.db, lease=LEASE) as engine:
        launched = time.monotonic()
        try:
            handle = engine.handle(args.run_id)
            existed = True
        except durably.RunNotFound:  # the first process died before the row committed
            handle = engine.with_options(run_id=args.run_id).start_workflow(
                wf, args.run_id, args.seed
            )
            existed = False
        if args.signal:
            _signal(engine, args.run_id)
        output = handle.result(timeout=args.timeout)
        seconds = time.monotonic() - launched
    _emit({"output": output, "seconds": seconds, "existed": existed})


def _wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"barrier {path} never opened")
        time.sleep(0.005)


def _barrier(args: argparse.Namespace) -> None:
    """Tell the parent this process is ready, then wait for everyone to go at once."""
    if args.barrier:
        barrier = Path(args.barrier)
        (barrier.parent / f"ready-{os.getpid()}").touch()
        _wait_for(barrier, 60)


def cmd_batch(args: argparse.Namespace) -> None:
    wf = WORKFLOWS[args.kind]
    engine = durably.Engine(args.db, lease=LEASE, poll_interval=args.poll)
    try:
        if not args.queued:
            engine.launch()
        _barrier(args)
        handles = []
        for i in range(args.count):
            run = f"{args.prefix}-{i}"
            handles.append(engine.with_options(run_id=run).start_workflow(wf, run, seed_of(run)))
            record(run, "__started__")
        if args.queued:
            engine.launch()
        outputs = {h.run_id: h.result(timeout=args.timeout) for h in handles}
    finally:
        engine.close()
    _emit({"outputs": outputs})


def cmd_race(args: argparse.Namespace) -> None:
    """Start every id (``id:<run id>``) or key (``key:<idempotency key>``) given."""
    wf = WORKFLOWS[args.kind]
    engine = durably.Engine(args.db, lease=LEASE, poll_interval=args.poll)
    try:
        if not args.queued:
            engine.launch()
        _barrier(args)
        handles: dict[str, durably.RunHandle[Any]] = {}
        for spec in args.specs:
            kind, _, tag = spec.partition(":")
            if kind == "id":
                handles[tag] = engine.with_options(run_id=tag).start_workflow(wf, tag, seed_of(tag))
            else:
                handles[tag] = engine.with_options(idempotency_key=tag).start_workflow(
                    wf, tag, seed_of(tag)
                )
        if args.queued:
            engine.launch()
        outputs = {tag: [h.run_id, h.result(timeout=args.timeout)] for tag, h in handles.items()}
    finally:
        engine.close()
    _emit({"outputs": outputs})


def cmd_drain(args: argparse.Namespace) -> None:
    """Execute runs until ``--go`` exists and every run named ``<prefix>*`` has ended."""
    deadline = time.monotonic() + args.timeout
    with durably.Engine(args.db, lease=LEASE, poll_interval=args.poll) as engine:
        _wait_for(Path(args.go), args.timeout)
        while True:
            runs = [r for r in engine.list_runs(limit=100_000) if r.run_id.startswith(args.prefix)]
            if all(r.status.terminal for r in runs):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"runs not finished: {[r.run_id for r in runs][:10]}")
            time.sleep(0.02)
    _emit({"ended": len(runs)})


def _attempt(stage: str, action: Callable[[], Any], report: dict[str, Any]) -> Any:
    try:
        return action()
    except Exception as exc:
        report.update(stage=stage, error_type=type(exc).__qualname__, message=str(exc))
        raise


def cmd_probe(args: argparse.Namespace) -> None:
    """Open the store, read ``--run-id``, then write: report where the first error came."""
    report: dict[str, Any] = {"stage": None, "error_type": None, "message": None}
    try:
        engine = _attempt("open", lambda: durably.Engine(args.db, lease=LEASE), report)
        try:
            run = _attempt("read", lambda: engine.get_run(args.run_id), report)
            report["read_status"] = str(run.status)
            report["read_output"] = run.output
            _attempt(
                "write",
                lambda: engine.with_options(run_id="probe-run").start_workflow(sync5, "probe", 1),
                report,
            )
        finally:
            engine.close()
    except Exception:  # reported above; the parent judges it
        pass
    _emit(report)


def main(argv: list[str] | None = None) -> None:
    global effect_log
    parser = argparse.ArgumentParser(prog="python -m tests.acceptance.app")
    parser.add_argument("--db", required=True)
    parser.add_argument("--effects")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--poll", type=float, default=1.0)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--kind", choices=WORKFLOWS, default="sync")
    run.add_argument("--run-id", required=True)
    run.add_argument("--queued", action="store_true")
    run.add_argument("--seed", type=int, default=SEED)
    run.add_argument("--signal", action="store_true", help=f"send {SIGNAL!r} once started")
    recover = sub.add_parser("recover")
    recover.add_argument("--kind", choices=WORKFLOWS, default="sync")
    recover.add_argument("--run-id", required=True)
    recover.add_argument("--seed", type=int, default=SEED)
    recover.add_argument("--signal", action="store_true", help=f"send {SIGNAL!r} too")
    batch = sub.add_parser("batch")
    batch.add_argument("--kind", choices=WORKFLOWS, default="sync3")
    batch.add_argument("--prefix", required=True)
    batch.add_argument("--count", type=int, default=50)
    batch.add_argument("--queued", action="store_true")
    batch.add_argument("--barrier")
    race = sub.add_parser("race")
    race.add_argument("--kind", choices=WORKFLOWS, default="sync3")
    race.add_argument("--queued", action="store_true")
    race.add_argument("--barrier")
    race.add_argument("specs", nargs="+")
    drain = sub.add_parser("drain")
    drain.add_argument("--prefix", required=True)
    drain.add_argument("--go", required=True)
    probe = sub.add_parser("probe")
    probe.add_argument("--run-id", required=True)
    args = parser.parse_args(argv)
    effect_log = args.effects
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    commands = {
        "run": cmd_run,
        "recover": cmd_recover,
        "batch": cmd_batch,
        "race": cmd_race,
        "drain": cmd_drain,
        "probe": cmd_probe,
    }
    commands[args.command](args)


if __name__ == "__main__":
    main()
