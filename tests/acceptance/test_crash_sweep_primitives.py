"""docs/guarantees.md, battery item 1, around the primitives: crashes around sleep,
signal, child, finish.

The workflow (sync and async) runs a step, sleeps durably long enough to be
released and re-claimed, runs a step, takes a signal, runs a step, starts a
child run (one step) and joins it, then runs a last step. The first process
sends the signal after starting the run; a recovering process sends it only if
no earlier process got that far. The crash points are the engine's own, hit
along this longer path: every commit around the sleep, the signal and the child
is a place to die.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from durably import crashpoints
from tests.acceptance import app
from tests.acceptance.effects import (
    MARKERS,
    Process,
    check_run,
    read_effects,
)
from tests.acceptance.harness import (
    Scenario,
    assert_clean_exit,
    crash_and_recover,
    integrity_check,
    reader,
    run_app,
    selected_params,
)

#: The recovering process may have to wait out the rest of the sleep.
#: The processes mostly sleep (the durable timer), so more of them fit at once.
PARALLEL = max(4, 4 * (os.cpu_count() or 1))
#: Step bodies in the order one uncrashed run executes them (the child's in the middle).
BODIES = ("m1", "m2", "m3", app.CHILD_STEP, "m4")

#: Hits one uncrashed run is sure to make (measured minimum over many runs: 19
#: commits, 3 finishes: the suspension for the sleep, the child's end, the run's end).
COMMIT_KS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 19)
KS = {
    "start.after_create": (1,),
    "claim.after": (1,),  # the claim that wakes the run after its sleep
    "step.before_body": (1, 2, 3, 4, 5),
    "step.after_body": (1, 2, 3, 4, 5),
    "step.after_checkpoint": (1, 2, 3, 4, 5),
    "commit.before": COMMIT_KS,
    "commit.after": COMMIT_KS,
    "run.before_finish": (1, 2, 3),
    "run.after_finish": (1, 2, 3),
}
QUEUED_KS = {"claim.after": (1, 2), "commit.after": (2,), "start.after_create": (1,)}


@dataclass(frozen=True)
class Case:
    kind: str  # "mixed-sync" | "mixed-async"
    point: str
    k: int
    queued: bool = False

    @property
    def id(self) -> str:
        return f"{self.kind}-{'queued' if self.queued else 'direct'}-{self.point}-{self.k}"


CASES = [
    Case(kind, point, k, queued)
    for kind in ("mixed-sync", "mixed-async")
    for queued, table in ((False, KS), (True, QUEUED_KS))
    for point, ks in table.items()
    for k in ks
]


def test_every_crash_point_is_swept() -> None:
    assert set(KS) == set(crashpoints.POINTS)


def _scenario(kind: str, run_id: str, queued: bool = False) -> Scenario:
    return Scenario(kind, run_id, queued=queued, signal=True, children=True)


def judge(workdir: Path, scenario: Scenario, processes: list[Process], result: Any) -> None:
    run_id = scenario.run_id
    expected = app.expected_mixed(app.SEED)
    assert result["output"] == expected, "recovered output differs from an uncrashed run's"
    log = read_effects(workdir / "effects.log")
    problems = check_run(log, run_id, ("m1", "m2", "m3", "m4"), processes).problems
    problems += check_run(log, app.child_tag(run_id), (app.CHILD_STEP,), processes).problems
    assert not problems, "\n".join(problems)
    unexpected = {e.run for e in log} - {run_id, app.child_tag(run_id)}
    assert not unexpected, f"effects of unexpected runs: {unexpected}"
    db = workdir / "durably.db"
    with reader(db) as engine:
        runs = {r.run_id: r for r in engine.list_runs()}
        (child_id,) = [r.run_id for r in runs.values() if r.parent_id == run_id]
        parent = [(s.seq, s.kind, s.name, s.status) for s in engine.steps(run_id)]
        child = [(s.seq, s.kind, s.name, s.status) for s in engine.steps(child_id)]
    assert len(runs) == 2, "exactly one child run"
    assert all(str(r.status) == "completed" for r in runs.values())
    assert runs[run_id].output == expected
    child_wf = "acceptance.mixed.child" + ("_async" if "async" in scenario.kind else "")
    assert parent == [
        (0, "step", "m1", "completed"),
        (1, "sleep", "sleep", "completed"),
        (2, "step", "m2", "completed"),
        (3, "signal", app.SIGNAL, "completed"),
        (4, "step", "m3", "completed"),
        (5, "child", child_wf, "completed"),
        (6, "join", child_wf, "completed"),
        (7, "step", "m4", "completed"),
    ]
    assert child == [(0, "step", app.CHILD_STEP, "completed")]
    assert integrity_check(db) == "ok"


def run_case(case: Case, workdir: Path) -> None:
    scenario = _scenario(case.kind, f"mixed-{case.id}", case.queued)
    outcome = crash_and_recover(workdir, scenario, [f"{case.point}:{case.k}"])
    assert_clean_exit(outcome.recovered)
    judge(workdir, scenario, outcome.processes, outcome.recovered.json())
    if case.point.startswith("step."):  # the k-th body is known: check where it died
        log = read_effects(workdir / "effects.log")
        ran = [e.step for e in log if e.pid == outcome.crashed.pid and e.step not in MARKERS]
        ran_before = case.k - 1 if case.point == "step.before_body" else case.k
        assert ran == list(BODIES[:ran_before]), f"{case.point}:{case.k} died after {ran}"


@pytest.fixture(scope="module")
def sweep(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[Case, Future[None]]]:
    """Start every selected case of this module at once; tests wait for their own."""
    with ThreadPoolExecutor(PARALLEL, thread_name_prefix="sweep") as pool:
        futures = {
            case: pool.submit(run_case, case, tmp_path_factory.mktemp(case.id))
            for case in selected_params(request, "case")
        }
        yield futures
        for future in futures.values():
            future.cancel()


def test_uncrashed_run(tmp_path: Path) -> None:
    """The reference: an uncrashed run gives the expected output, each body once."""
    for kind in ("mixed-sync", "mixed-async"):
        workdir = tmp_path / kind
        workdir.mkdir()
        scenario = _scenario(kind, f"plain-{kind}")
        result = run_app(scenario.run_args(workdir / "durably.db", workdir / "effects.log"))
        assert_clean_exit(result)
        output = result.json()
        judge(workdir, scenario, [Process(result.pid)], output | {"seconds": 0.0})
        counts = [e.step for e in read_effects(workdir / "effects.log") if e.step not in MARKERS]
        assert sorted(counts) == sorted(BODIES)


@pytest.mark.slow  # ~40 s for the whole sweep on 2 cores (the cases run in parallel)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_crash_and_recover(case: Case, sweep: dict[Case, Future[None]]) -> None:
    sweep[case].result(timeout=110)
