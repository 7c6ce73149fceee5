"""The effect log of the acceptance tests, and the checkers that judge it (one for all).

The effect log is a plain file outside durably's database. Every execution of a
step body appends a line to it when it starts (and, in the PostgreSQL app, when
it ends), so it shows what really ran, whatever the database says::

    <unix time> <pid> <start|end|mark> <run> <step> <token>

A token names one execution; a step that returns it puts it in its checkpoint,
so the token in the journal names exactly the execution that committed. Marks
(:data:`STARTED`, :data:`SIGNALLED`) record what the test's own processes did.

The checkers apply docs/guarantees.md, G1 (completion) and G2 (a step body
starts at least once; once its checkpoint committed it never runs again):

* :func:`check_run` for one run crashed and recovered by processes started one
  after another: each process knows which checkpoints had committed when it
  started (read from the journal while none ran), and may run only the others.
* :func:`check_tokens` for runs executed by concurrent workers: the committed
  token must be one that ran, and no execution may start after it.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import durably

#: The effect log's clock, taken before any test app skews ``time.time`` (PGT_SKEW).
_true_time = time.time
STARTED = "__started__"  # the mark a child writes once start_workflow returned
SIGNALLED = "__signalled__"  # ... and once it sent the run its signal
MARKERS = frozenset({STARTED, SIGNALLED})


def record(path: str | None, event: str, run: str, step: str, token: str = "-") -> None:
    """Append one line to the effect log ``path`` (nothing if ``None``).

    One small ``write`` with O_APPEND lands whole, and the page cache keeps it
    when the process is SIGKILLed (only power loss would need an fsync).
    """
    if path is None:
        return
    line = f"{_true_time():.6f} {os.getpid()} {event} {run} {step} {token}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Effect:
    """One line of the effect log."""

    run: str
    step: str
    pid: int
    event: str = "start"
    token: str = "-"
    at: float = 0.0


def read_effects(path: Path) -> list[Effect]:
    """The effect log in append order (chronological: each line is one append)."""
    if not path.exists():
        return []
    effects = []
    for line in path.read_text().splitlines():
        at, pid, event, run, step, token = line.split(" ")
        effects.append(Effect(run, step, int(pid), event, token, float(at)))
    return effects


# -- runs recovered by one process after another -------------------------------------
@dataclass(frozen=True)
class Process:
    """One process that worked on a run, in launch order.

    ``committed_at_start``: the steps whose checkpoint was committed when it was
    launched (read from the journal while no process was running).
    """

    pid: int
    committed_at_start: frozenset[str] = frozenset()
    killed: bool = False


@dataclass
class RunReport:
    """What the effect log says about one run, and every G2 violation found."""

    run: str
    executions: dict[str, list[int]] = field(default_factory=dict)  # step -> pids in order
    problems: list[str] = field(default_factory=list)

    def count(self, step: str) -> int:
        return len(self.executions.get(step, []))

    @property
    def duplicates(self) -> dict[str, list[int]]:
        """Steps executed more than once (each explained by a crash, or a problem)."""
        return {s: pids for s, pids in self.executions.items() if len(pids) > 1}


def check_run(
    effects: Iterable[Effect],
    run: str,
    steps: Sequence[str],
    processes: Sequence[Process],
) -> RunReport:
    """Check one run's executions against G2, given the processes that worked on it.

    Every step ran at least once; no process ran a step twice (the workflows
    have no retries); no process ran a step whose checkpoint had committed
    before it started; and a step ran again only after a killed process whose
    last step in this run it was. The workflows call their steps one after the
    other, so a process that went on to the next step had committed this one;
    a rerun is thus allowed only for a process killed between the body and the
    checkpoint commit of the step it was in: the window G2 allows.
    """
    report = RunReport(run)
    last_step: dict[int, str] = {}  # the step each process executed last in this run
    for effect in effects:
        if effect.run == run and effect.event == "start" and effect.step not in MARKERS:
            report.executions.setdefault(effect.step, []).append(effect.pid)
            last_step[effect.pid] = effect.step
    by_pid = {p.pid: p for p in processes}
    for step in steps:
        pids = report.executions.get(step, [])
        if not pids:
            report.problems.append(f"run {run}: step {step} never executed")
        report.problems += [
            f"run {run}: {problem}"
            for problem in _sequential_problems(step, pids, by_pid, last_step)
        ]
    unexpected = set(report.executions) - set(steps)
    if unexpected:
        report.problems.append(f"run {run}: unexpected steps executed: {sorted(unexpected)}")
    return report


def _sequential_problems(
    step: str, pids: list[int], by_pid: Mapping[int, Process], last_step: Mapping[int, str]
) -> Iterator[str]:
    for pid in sorted(set(pids)):
        if pids.count(pid) > 1:
            yield f"step {step} executed {pids.count(pid)} times in process {pid}"
        process = by_pid.get(pid)
        if process is None:
            yield f"step {step} executed by unknown pid {pid}"
        elif step in process.committed_at_start:
            yield (
                f"step {step} re-executed by process {pid} although its checkpoint had "
                "committed before that process started (G2)"
            )
    for pid in pids[:-1]:  # an earlier execution must be explained by a kill...
        process = by_pid.get(pid)
        if process is not None and not process.killed:
            yield f"step {step} executed by {pid}, which was not killed, and again (pids {pids})"
        elif last_step.get(pid) != step:  # ...inside the step the process died in
            yield (
                f"step {step} ran again after process {pid} was killed, but {pid} had "
                f"moved on to {last_step.get(pid)} (so {step} had committed)"
            )


def exactly_once(effects: Iterable[Effect], steps: Sequence[str]) -> dict[str, list[str]]:
    """For runs no process was killed in: per run, each deviation from one execution per step.

    A run that was started (see :data:`STARTED`) but never ran a step is a deviation too.
    """
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(steps, 0))
    for effect in effects:
        per_step = counts[effect.run]  # creates the entry of a started run
        if effect.event == "start" and effect.step not in MARKERS:
            per_step[effect.step] = per_step.get(effect.step, 0) + 1
    return {
        run: [f"{step} x{n}" for step, n in per_step.items() if n != 1]
        for run, per_step in counts.items()
        if any(n != 1 for n in per_step.values())
    }


def started_runs(effects: Iterable[Effect]) -> set[str]:
    """Runs whose start_workflow call returned (G1 applies to these)."""
    return {e.run for e in effects if e.step == STARTED}


def lost_runs(started: Iterable[str], statuses: Mapping[str, durably.RunStatus | None]) -> set[str]:
    """Started runs that did not complete: missing from the store or not terminal."""
    return {r for r in started if statuses.get(r) is not durably.RunStatus.COMPLETED}


# -- runs executed by concurrent workers ------------------------------------------------
@dataclass
class Execution:
    """One execution of a step body: its start, and its end if it got there."""

    run: str
    step: str
    token: str
    pid: int
    start: float
    end: float | None = None


def executions(effects: Iterable[Effect]) -> dict[tuple[str, str], list[Execution]]:
    """Per (run, step), the body executions in start order."""
    by_token: dict[str, Execution] = {}
    for e in effects:
        if e.event == "start":
            by_token[e.token] = Execution(e.run, e.step, e.token, e.pid, e.at)
        elif e.event == "end":
            by_token[e.token].end = e.at
    out: dict[tuple[str, str], list[Execution]] = defaultdict(list)
    for ex in sorted(by_token.values(), key=lambda x: x.start):
        out[(ex.run, ex.step)].append(ex)
    return out


def check_tokens(
    run_id: str, step: str, token: str, runs_of_step: list[Execution], killed: set[int]
) -> Iterator[str]:
    """G2 for one step whose committed checkpoint holds ``token``.

    The committed token is one that ran; no execution of the step began after the
    one that committed it began (a commit needs the lease held since the claim, so
    a later start means a re-run after the checkpoint); every superseded execution
    was by a process that was killed or lost its lease (``killed``).
    """
    if not runs_of_step:
        yield f"run {run_id} {step}: never executed"
        return
    tokens = [x.token for x in runs_of_step]
    if token not in tokens:
        yield f"run {run_id} {step}: committed token {token} matches no execution"
        return
    winner = runs_of_step[tokens.index(token)]
    if winner.end is None:
        yield f"run {run_id} {step}: the committing execution never ended"
    later = [x for x in runs_of_step if x.start > winner.start]
    if later:
        yield (
            f"run {run_id} {step}: executed again (pids {[x.pid for x in later]}) after the "
            f"execution that committed it (pid {winner.pid}) began (G2)"
        )
    for x in runs_of_step:
        if x is not winner and x.pid not in killed:
            yield f"run {run_id} {step}: superseded execution by pid {x.pid}, never killed"
