"""docs/guarantees.md, battery item 1: the crash sweep, against real processes killed with SIGKILL.

For every crash point and several hit counts, a child process starts a 5-step
workflow (sync and async) and SIGKILLs itself at that point; then a fresh child
opens the same SQLite file and waits for the run. The run must complete with the
output of an uncrashed run, every step must have run at least once, no step may
run again once its checkpoint committed, and the journal must hold exactly the
5 completed steps.

Cases run in parallel child processes (a module fixture starts every selected
case at once on a thread pool); each test waits for and judges its own case.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import durably
from durably import crashpoints
from tests.acceptance import app
from tests.acceptance.effects import (
    STARTED,
    Process,
    check_run,
    read_effects,
)
from tests.acceptance.harness import (
    Outcome,
    Scenario,
    assert_clean_exit,
    crash_and_recover,
    integrity_check,
    reader,
    run_app,
    selected_params,
)

PARALLEL = max(2, 2 * (os.cpu_count() or 1))

#: How often one uncrashed 5-step run is sure to pass each point, in each mode.
#: The sweep arms every k up to this, so every case really crashes. Commits: the
#: run's own writes (create, 5 checkpoints, finish) are sequential, so they are 7
#: commits at least (claims and progress writes only add more).
DIRECT_HITS = {
    "start.after_create": 1,
    "claim.after": 0,  # a run started by a running engine is created claimed: no claim
    "step.before_body": 5,
    "step.after_body": 5,
    "commit.before": 7,
    "commit.after": 7,
    "step.after_checkpoint": 5,
    "run.before_finish": 1,
    "run.after_finish": 1,
}
#: Started with the executor stopped, then launched: the run goes through a claim.
#: Commit 1 creates the run and commit 2 is the claim (nothing else writes before).
QUEUED_KS = {point: (1,) for point in DIRECT_HITS} | {
    "commit.before": (1, 2, 3),
    "commit.after": (1, 2, 3),
    "step.after_body": (1, 5),
}


@dataclass(frozen=True)
class Case:
    kind: str  # "sync" | "async"
    point: str
    k: int
    queued: bool

    @property
    def id(self) -> str:
        mode = "queued" if self.queued else "direct"
        return f"{self.kind}-{mode}-{self.point}-{self.k}"

    @property
    def crash_at(self) -> str:
        return f"{self.point}:{self.k}"


def _cases() -> list[Case]:
    cases = []
    for kind in ("sync", "async"):
        for point, hits in DIRECT_HITS.items():
            cases += [Case(kind, point, k, queued=False) for k in range(1, hits + 1)]
        for point, ks in QUEUED_KS.items():
            cases += [Case(kind, point, k, queued=True) for k in ks]
    return cases


CASES = _cases()


def test_every_crash_point_is_swept() -> None:
    """A crash point added to the engine must be added to the sweep."""
    assert set(DIRECT_HITS) == set(crashpoints.POINTS)
    swept = {case.point for case in CASES}
    assert swept == set(crashpoints.POINTS)


# -- running one case -------------------------------------------------------------
def judge(workdir: Path, run_id: str, outcome: Outcome, expected: Any) -> None:
    """Every acceptance condition of the sweep, for one run."""
    db, effects = workdir / "durably.db", workdir / "effects.log"
    assert_clean_exit(outcome.recovered)
    result = outcome.recovered.json()
    assert result["output"] == expected, "recovered output differs from an uncrashed run's"
    report = check_run(read_effects(effects), run_id, app.STEP_NAMES, outcome.processes)
    assert not report.problems, "\n".join(report.problems)
    with reader(db) as engine:
        run = engine.get_run(run_id)
        assert run.status is durably.RunStatus.COMPLETED
        assert run.output == expected
        journal = [(s.seq, s.kind, s.name, s.status) for s in engine.steps(run_id)]
    assert journal == [(i, "step", name, "completed") for i, name in enumerate(app.STEP_NAMES)]
    assert integrity_check(db) == "ok"


def state_at_crash(case: Case) -> tuple[frozenset[str], frozenset[str]] | None:
    """(steps the killed process ran, steps committed) that the crash point implies.

    ``None`` for the commit points, whose k-th hit may be any write.
    """
    names = app.STEP_NAMES
    if case.point in ("start.after_create", "claim.after"):
        ran, committed = 0, 0
    elif case.point == "step.before_body":
        ran, committed = case.k - 1, case.k - 1
    elif case.point == "step.after_body":
        ran, committed = case.k, case.k - 1
    elif case.point == "step.after_checkpoint":
        ran, committed = case.k, case.k
    elif case.point in ("run.before_finish", "run.after_finish"):
        ran, committed = len(names), len(names)
    else:
        return None
    return frozenset(names[:ran]), frozenset(names[:committed])


def run_case(case: Case, workdir: Path, expected: Any) -> None:
    run_id = f"sweep-{case.id}"
    outcome = crash_and_recover(
        workdir, Scenario(case.kind, run_id, queued=case.queued), [case.crash_at]
    )
    judge(workdir, run_id, outcome, expected)
    implied = state_at_crash(case)
    if implied is not None:
        log = read_effects(workdir / "effects.log")
        ran = frozenset(e.step for e in log if e.pid == outcome.crashed.pid) - {STARTED}
        committed = outcome.committed_after_crash or frozenset()
        assert (ran, committed) == implied, (
            f"{case.crash_at} did not stop the process where it says it does"
        )


# -- the sweep --------------------------------------------------------------------
@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The output of an uncrashed run of each workflow, each step run exactly once."""
    outputs = {}
    for kind in ("sync", "async"):
        workdir = tmp_path_factory.mktemp(f"baseline-{kind}")
        db, effects = workdir / "durably.db", workdir / "effects.log"
        result = run_app(Scenario(kind, f"baseline-{kind}").run_args(db, effects), timeout=30)
        assert_clean_exit(result)
        report = check_run(
            read_effects(effects), f"baseline-{kind}", app.STEP_NAMES, [Process(result.pid)]
        )
        assert not report.problems and not report.duplicates, report
        outputs[kind] = result.json()["output"]
        assert outputs[kind] == app.expected_output(app.SEED)
    return outputs


@pytest.fixture(scope="module")
def sweep(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    baseline: dict[str, Any],
) -> Iterator[dict[Case, Future[None]]]:
    """Start every selected case of this module at once; tests wait for their own."""
    selected = selected_params(request, "case")
    with ThreadPoolExecutor(PARALLEL, thread_name_prefix="sweep") as pool:
        futures = {
            case: pool.submit(run_case, case, tmp_path_factory.mktemp(case.id), baseline[case.kind])
            for case in selected
        }
        yield futures
        for future in futures.values():
            future.cancel()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_crash_and_recover(case: Case, sweep: dict[Case, Future[None]]) -> None:
    sweep[case].result(timeout=100)


# -- repeated crashes -------------------------------------------------------------
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_crash_after_every_checkpoint_still_makes_progress(
    kind: str, tmp_path: Path, baseline: dict[str, Any]
) -> None:
    """Five processes in a row die right after committing one step each; a sixth finishes."""
    run_id = f"chain-{kind}"
    specs = ["step.after_checkpoint:1"] * 5
    outcome = crash_and_recover(tmp_path, Scenario(kind, run_id), specs)
    judge(tmp_path, run_id, outcome, baseline[kind])
    assert outcome.committed_after_crash == frozenset(app.STEP_NAMES)
    effects = read_effects(tmp_path / "effects.log")
    report = check_run(effects, run_id, app.STEP_NAMES, outcome.processes)
    assert not report.duplicates, "no step may run twice when every crash followed a commit"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_recovering_processes_are_killed_too(
    kind: str, tmp_path: Path, baseline: dict[str, Any]
) -> None:
    """The processes that recover the run die as well, each at a different point."""
    run_id = f"mixed-{kind}"
    specs = [
        "step.after_body:2",  # the first process dies inside step2's window
        "claim.after:1",  # the next one right after claiming it
        "commit.after:2",  # then after its second commit (the claim was the first)
        "step.before_body:1",  # then about to run its first step body
        "step.after_body:2",  # then with a second body run but not checkpointed
        "run.before_finish:1",  # then with every step done, before finishing
    ]
    outcome = crash_and_recover(tmp_path, Scenario(kind, run_id), specs)
    judge(tmp_path, run_id, outcome, baseline[kind])
