"""crash_sweep: crash a workflow at every checkpoint it passes, resume it, and check it.

The workflow runs once, uncrashed, while every crash point it passes is counted
(:mod:`durably.crashpoints`). Then, for each of those points in turn, a fresh run
on a fresh store is crashed there and resumed by a fresh engine on the same
store; the sweep checks that it ends as the uncrashed run did, that no step body
ran again once its checkpoint had committed, that replay found the same calls
(no :class:`~durably.errors.NonDeterminismError`), and, given ``effects``, that
the writes the workflow made outside the journal are those of the uncrashed run.

In process (the default) a crash closes the engine's store at the crash point, so
nothing after it is written, and stops the execution there; ``mode="process"``
runs the execution in a child process that SIGKILLs itself at the crash point.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from durably import crashpoints
from durably.errors import DurablyError, StoreClosed, WorkflowFailed
from durably.hooks import RunClaimed, StepStarted, Subscriber
from durably.records import EntryStatus, RunFilter
from durably.registry import Workflow
from durably.runtime.context import current
from durably.stores import open_store
from durably.stores.sqlite import SQLiteStore
from durably.testing.child import crash_in_child
from durably.testing.clock import VirtualClock
from durably.testing.engine import TestEngine
from durably.testing.passes import COMMITS, Passes

#: Real seconds one run (uncrashed, or resumed) may take before the sweep gives up.
RUN_TIMEOUT = 60.0


class SimulatedCrash(BaseException):
    """Raised on a run's thread where the sweep crashed it (never caught as an error)."""


class CrashSweepFailed(AssertionError):
    """At least one crash point broke the workflow; ``report`` says which and how."""

    def __init__(self, report: SweepReport) -> None:
        super().__init__("crash_sweep found problems:\n" + report.table())
        self.report = report


@dataclass(frozen=True)
class CrashPoint:
    """What one crash did: where (``step.after_body:2``, the step in progress) and the
    problems found after resuming (none when it went as the uncrashed run)."""

    point: str
    step: str | None
    outcome: str
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class SweepReport:
    """The uncrashed run's outcome and one :class:`CrashPoint` per crash made."""

    workflow: str
    outcome: str
    points: list[CrashPoint] = field(default_factory=list)
    #: False: two uncrashed runs returned different values; each crashed one must end
    #: the same way (return, or fail with the same error type), whatever it returns.
    exact: bool = True

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.points)

    @property
    def failures(self) -> list[CrashPoint]:
        return [p for p in self.points if not p.ok]

    def table(self) -> str:
        """One line per crash point: where, in which step, and what went wrong."""
        rows = [("crash point", "step", "problems")]
        rows += [(p.point, p.step or "-", "; ".join(p.problems) or "ok") for p in self.points]
        width = [max(len(r[i]) for r in rows) for i in range(2)]
        lines = [f"{a:<{width[0]}}  {b:<{width[1]}}  {c}" for a, b, c in rows]
        varies = "" if self.exact else " (varies between fresh runs: compared by how it ends)"
        return "\n".join([f"{self.workflow}: {self.outcome}{varies}", *lines])


def crash_sweep(
    workflow: Workflow[..., Any],
    *args: Any,
    effects: Callable[[], Sequence[Any]] | None = None,
    mode: str = "inprocess",
    **kwargs: Any,
) -> SweepReport:
    """Crash ``workflow(*args, **kwargs)`` at each of its checkpoints in turn and check
    every recovery; the report, or :class:`CrashSweepFailed` with a table.

    ``effects``: returns what the workflow wrote outside the journal so far (a list
    a test's fake mailer appends to ...); each crashed run must add what the
    uncrashed one added, no more (a write repeated by a replay or by a step that
    ran again is reported). ``mode``: ``"inprocess"`` or ``"process"`` (a real
    child process SIGKILLed at each point; the workflow must be importable).
    Not to be run beside other engines of the same process: crash points are global.
    """
    if not isinstance(workflow, Workflow):
        raise TypeError(f"crash_sweep() takes a @durably.workflow, not {workflow!r}")
    if mode not in ("inprocess", "process"):
        raise ValueError(f"mode must be 'inprocess' or 'process', not {mode!r}")
    look = _Effects(effects)
    base = _Execution(workflow, args, kwargs)
    outcome, made = base.uncrashed(look)
    # A result holding a time, a random id or a run id differs between two fresh runs:
    # then how each crashed run ended is compared, not what it returned.
    again, _ = _Execution(workflow, args, kwargs).uncrashed(_Effects(None))
    report = SweepReport(workflow.name, outcome, exact=again == outcome)
    seen: collections.Counter[str] = collections.Counter()
    for name in base.passes.passed:
        seen[name] += 1
        run = _Execution(workflow, args, kwargs, (name, seen[name]))
        run.exact = report.exact
        crashed = run.crashed_in_child if mode == "process" else run.crashed
        report.points.append(crashed(outcome, made, look))
    if not report.ok:
        raise CrashSweepFailed(report)
    return report


class _Effects:
    """The writes a workflow made outside the journal during one run."""

    def __init__(self, read: Callable[[], Sequence[Any]] | None) -> None:
        self.read = read

    @contextlib.contextmanager
    def during(self, into: list[Any]) -> Iterator[None]:
        before = len(self.read()) if self.read else 0
        try:
            yield
        finally:
            if self.read is not None:
                into.extend(self.read()[before:])


class _Bodies(Subscriber):
    """Which step bodies ran (by journal position); crashes the engine's zombie."""

    def __init__(self) -> None:
        self.ran: list[tuple[str, int]] = []  # (run id, position): children's too
        self.current: str | None = None
        self.dead = threading.Event()

    @contextlib.contextmanager
    def run_executing(self, event: RunClaimed) -> Iterator[None]:
        if self.dead.is_set():  # a crashed process runs nothing more
            raise SimulatedCrash()
        yield

    def step_started(self, event: StepStarted) -> None:
        self.current = event.step

    @contextlib.contextmanager
    def step_executing(self, event: StepStarted) -> Iterator[None]:
        if self.dead.is_set():
            raise SimulatedCrash()
        self.ran.append((event.run_id, event.seq))
        yield


class _Execution:
    """One run of the workflow on a store of its own (a temporary SQLite file), crashed
    at the ``target``-th pass through a crash point, if given."""

    def __init__(
        self,
        workflow: Workflow[..., Any],
        args: Any,
        kwargs: Any,
        target: tuple[str, int] | None = None,
    ) -> None:
        self.workflow, self.args, self.kwargs = workflow, args, kwargs
        self.target = target
        self.point = "-" if target is None else f"{target[0]}:{target[1]}"
        self.clock = VirtualClock()
        self.passes = Passes(target)
        self.step: str | None = None  # the step in progress at the crash
        self.exact = True  # compare the outcome's text, not only how it ended
        self.path = os.path.join(tempfile.mkdtemp(prefix="durably-sweep-"), "durably.db")

    def _engine(self) -> tuple[TestEngine, _Bodies]:
        engine = TestEngine(self.path, clock=self.clock, shutdown_grace=0, launch=False)
        bodies = _Bodies()
        engine.hooks.subscribe(bodies)  # before it executes anything
        engine.launch()
        return engine, bodies

    def uncrashed(self, look: _Effects) -> tuple[str, list[Any]]:
        made: list[Any] = []
        engine, _ = self._engine()
        try:
            with look.during(made), crashpoints.watching(self.passes.hear):
                run_id = engine.start_workflow(self.workflow, *self.args, **self.kwargs).run_id
                outcome = _outcome(engine, run_id)
        finally:
            engine.close()
            self.remove()
        return outcome, made

    def remove(self) -> None:
        shutil.rmtree(os.path.dirname(self.path), ignore_errors=True)

    def crashed(self, expected: str, made: list[Any], look: _Effects) -> CrashPoint:
        written: list[Any] = []
        first, bodies = self._engine()
        crashed = threading.Event()
        store = first.store
        assert isinstance(store, SQLiteStore)

        def crash(name: str) -> None:
            self.step = bodies.current
            bodies.dead.set()  # no step body, no execution starts any more
            store.refuse()  # nothing after this point is written
            crashed.set()
            # A run's own thread stops here; a commit's goes on to answer the writes
            # of its batch (refused now, or committed just before the crash).
            if current() is not None and name not in COMMITS:
                raise SimulatedCrash()

        self.passes.crash = crash
        try:
            with look.during(written), crashpoints.watching(self.passes.hear):
                handle = first.start_workflow(self.workflow, *self.args, **self.kwargs)
                _wait_for(crashed, first, handle.run_id)
            _close_quietly(first)
            if not crashed.is_set():
                return CrashPoint(self.point, bodies.current, "not reached")
            return self._resumed(self.step, handle.run_id, expected, made, written, look)
        finally:
            _close_quietly(first)
            self.remove()

    def crashed_in_child(self, expected: str, made: list[Any], look: _Effects) -> CrashPoint:
        target = self.target
        assert target is not None
        written: list[Any] = []
        try:
            with look.during(written):
                run_id, step = crash_in_child(
                    self.workflow, (self.args, self.kwargs), self.path, self.clock, target
                )
            if step is None:
                return CrashPoint(self.point, None, "not reached")
            return self._resumed(step or None, run_id, expected, made, written, look)
        finally:
            self.remove()

    def _resumed(
        self,
        step: str | None,
        run_id: str,
        expected: str,
        made: list[Any],
        written: list[Any],
        look: _Effects,
    ) -> CrashPoint:
        done = _checkpointed(self.path)  # before the crash
        with look.during(written):
            engine, bodies = self._engine()
            try:
                self.clock.advance(engine.lease + 1)  # the crashed worker's lease runs out
                outcome = _outcome(engine, run_id)
            finally:
                engine.close()
        problems = []
        if "non-deterministic workflow at " in outcome:  # the journal's words, shortened
            where = outcome.partition("non-deterministic workflow at ")[2]
            problems.append("NonDeterminismError at " + where.partition(". Restore")[0])
        elif outcome != expected and (self.exact or _ending(outcome) != _ending(expected)):
            problems.append(f"ended {outcome!r}, uncrashed {expected!r}")
        again = sorted(set(bodies.ran) & done)
        if again:
            where = ", ".join(f"{seq} of run {run}" for run, seq in again)
            problems.append(f"step bodies at positions {where} ran again after their checkpoint")
        extra = collections.Counter(map(repr, written)) - collections.Counter(map(repr, made))
        if extra:
            problems.append(f"written outside the journal again: {', '.join(sorted(extra))}")
        return CrashPoint(self.point, step, outcome, tuple(problems))


def _outcome(engine: TestEngine, run_id: str) -> str:
    """How the run ended, as text that two runs of the same workflow can compare."""
    try:
        return f"returned {engine.handle(run_id).result(timeout=RUN_TIMEOUT)!r}"
    except WorkflowFailed as failed:
        return f"failed with {failed.error.type}: {failed.error.message}"
    except DurablyError as exc:
        return f"{type(exc).__name__}: {exc}"


def _ending(outcome: str) -> str:
    """How a run ended, without what it returned or said: ``returned``, ``failed with
    StepFailed``."""
    return "returned" if outcome.startswith("returned ") else outcome.partition(":")[0]


def _wait_for(crashed: threading.Event, engine: TestEngine, run_id: str) -> None:
    """Until the crash happened or the run ended without reaching it."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while not crashed.wait(0.002):
        try:
            row = engine.store.get_run(run_id)
        except StoreClosed:  # closed by the crash, just now
            return
        if row is not None and row.status.terminal:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} neither crashed nor ended")


def _checkpointed(path: str) -> set[tuple[str, int]]:
    """The positions of steps whose checkpoints committed, of every run of the store (the
    swept run, its children and its continuations), by run id."""
    store = open_store(path)
    try:
        runs = store.list_runs(RunFilter(), 1_000_000)
        return {
            (run.run_id, entry.seq)
            for run in runs
            for entry in store.journal(run.run_id)
            if entry.status is EntryStatus.COMPLETED
        }
    finally:
        store.close()


def _close_quietly(engine: TestEngine) -> None:
    with contextlib.suppress(Exception):
        engine.close()
