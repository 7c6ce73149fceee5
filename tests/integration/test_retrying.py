"""``engine.retry`` re-runs a failed run's failed steps wherever they are, or says why not."""

from __future__ import annotations

import contextlib
from collections import Counter

import pytest

import durably

BROKEN: set[str] = set()
CALLS: Counter[str] = Counter()


@durably.step(retries=0)
def item(x: int) -> int:
    CALLS[f"item-{x}"] += 1
    if f"item-{x}" in BROKEN:
        raise ValueError(f"item {x} is broken")
    return x * 10


@durably.workflow(name="retry.mapped")
def mapped(xs: list[int]) -> list[int]:
    return durably.map(item, xs)


def test_a_failed_map_branch_runs_again(engine: durably.Engine) -> None:
    BROKEN.update({"item-2", "item-4"})
    handle = engine.start_workflow(mapped, [1, 2, 3, 4, 5])
    with pytest.raises(durably.WorkflowFailed, match="item 2 is broken"):
        handle.result(timeout=10)
    BROKEN.clear()
    before = CALLS.copy()
    assert engine.retry(handle.run_id).result(timeout=10) == [10, 20, 30, 40, 50]
    # Only the failed branches ran again; the others replayed.
    ran_again = {k: CALLS[k] - before[k] for k in CALLS if CALLS[k] != before[k]}
    assert ran_again == {"item-2": 1, "item-4": 1}


@durably.step(retries=0)
def reserve(x: int) -> str:
    return f"reserved {x}"


@durably.step
def release(x: int) -> str:
    return f"released {x}"


@durably.step(retries=0)
def charge(x: int) -> str:
    if "charge" in BROKEN:
        raise ValueError("card declined")
    return f"charged {x}"


@durably.workflow(name="retry.compensated")
def compensated(x: int) -> str:
    reserve(x)
    durably.compensate(release, x)
    return charge(x)


def test_a_run_whose_compensations_ran_is_refused(engine: durably.Engine) -> None:
    BROKEN.add("charge")
    handle = engine.start_workflow(compensated, 7)
    with pytest.raises(durably.WorkflowFailed, match="card declined"):
        handle.result(timeout=10)
    BROKEN.clear()
    with pytest.raises(durably.InvalidRunState, match=r"compensations already ran.*'release'"):
        engine.retry(handle.run_id)
    assert engine.get_run(handle.run_id).status is durably.RunStatus.FAILED


@durably.workflow(name="retry.handled")
def handled(x: int) -> str:
    with contextlib.suppress(durably.StepFailed):
        item(x)  # a failure handled: the workflow goes on without it
    if "finish" in BROKEN:
        raise RuntimeError("the workflow's own bug")
    return "done"


def test_a_handled_failure_is_kept_and_the_run_replays(engine: durably.Engine) -> None:
    BROKEN.update({"item-9", "finish"})
    handle = engine.start_workflow(handled, 9)
    with pytest.raises(durably.WorkflowFailed, match="own bug"):
        handle.result(timeout=10)
    BROKEN.clear()
    calls = CALLS["item-9"]
    assert engine.retry(handle.run_id).result(timeout=10) == "done"
    assert CALLS["item-9"] == calls  # replayed as failed and handled, not run again
    (entry,) = engine.steps(handle.run_id)
    assert entry.status == "failed"


def test_only_failed_runs_are_retried(engine: durably.Engine) -> None:
    handle = engine.start_workflow(mapped, [1])
    assert handle.result(timeout=10) == [10]
    with pytest.raises(durably.InvalidRunState, match="completed; only failed runs"):
        engine.retry(handle.run_id)
