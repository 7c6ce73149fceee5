"""Changed workflow code is always detected on replay, with a precise error (G5)."""

from __future__ import annotations

import pytest

import durably

#: Which version of the "code" the workflow runs; tests change it between executions.
VERSION = {"v": "original", "fail": True}
EXECUTED: list[str] = []


@durably.step
def step_a() -> str:
    EXECUTED.append("a")
    return "a"


@durably.step
def step_b() -> str:
    EXECUTED.append("b")
    return "b"


@durably.step
def step_c() -> str:
    EXECUTED.append("c")
    return "c"


@durably.step(name="renamed_b")
def step_b_renamed() -> str:
    return "b2"


@durably.step(retries=0)
def last() -> str:
    if VERSION["fail"]:
        raise RuntimeError("fail so the run can be resumed with other code")
    return "last"


@durably.workflow(name="t.evolving")
def evolving() -> str:
    v = VERSION["v"]
    if v == "original":
        calls = [step_a, step_b, step_c]
    elif v == "added":
        calls = [step_a, step_c, step_b, step_c]
    elif v == "removed":
        calls = [step_a]
    elif v == "reordered":
        calls = [step_b, step_a, step_c]
    elif v == "renamed":
        calls = [step_a, step_b_renamed, step_c]
    else:
        raise AssertionError(v)
    parts = [call() for call in calls]
    if v == "removed":
        return "".join(parts)
    return "".join(parts) + last()


def _failed_original_run(engine: durably.Engine) -> str:
    VERSION.update(v="original", fail=True)
    handle = engine.start_workflow(evolving)
    with pytest.raises(durably.WorkflowFailed):
        handle.result(timeout=10)
    assert [s.name for s in engine.steps(handle.run_id)] == ["step_a", "step_b", "step_c", "last"]
    return handle.run_id


@pytest.mark.parametrize(
    ("version", "position", "recorded", "current"),
    [
        ("added", 1, "step 'step_b'", "step 'step_c'"),
        ("reordered", 0, "step 'step_a'", "step 'step_b'"),
        ("renamed", 1, "step 'step_b'", "step 'renamed_b'"),
        ("removed", 1, "step 'step_b'", "nothing"),
    ],
)
def test_changed_code_is_detected(
    engine: durably.Engine, version: str, position: int, recorded: str, current: str
) -> None:
    run_id = _failed_original_run(engine)
    VERSION.update(v=version, fail=False)
    EXECUTED.clear()
    handle = engine.retry(run_id)
    with pytest.raises(durably.WorkflowFailed) as info:
        handle.result(timeout=10)
    assert info.value.error_type == "NonDeterminismError"
    message = info.value.error_message
    assert run_id in message
    assert f"position {position}" in message
    assert recorded in message and current in message
    assert "test_determinism.py" in message  # the recorded call site
    assert engine.get_run(run_id).status is durably.RunStatus.FAILED
    assert EXECUTED == []  # nothing ran past the mismatch: recorded steps replayed

    # Fixing the code and retrying resumes the run from its journal.
    VERSION.update(v="original", fail=False)
    assert engine.retry(run_id).result(timeout=10) == "abclast"
    assert EXECUTED == []


@durably.workflow(name="t.swallows")
def swallows() -> str:
    try:
        first = step_b() if VERSION["v"] == "reordered" else step_a()
    except Exception:
        first = "swallowed"
    return first + last()


def test_mismatch_cannot_be_swallowed(engine: durably.Engine) -> None:
    VERSION.update(v="original", fail=True)
    handle = engine.start_workflow(swallows)
    with pytest.raises(durably.WorkflowFailed, match="fail so the run"):
        handle.result(timeout=10)
    VERSION.update(v="reordered", fail=False)
    with pytest.raises(durably.WorkflowFailed) as info:
        engine.retry(handle.run_id).result(timeout=10)
    assert info.value.error_type == "NonDeterminismError"


def test_same_step_twice_is_two_entries(engine: durably.Engine) -> None:
    @durably.workflow(name="t.twice")
    def twice() -> list[str]:
        return [step_a(), step_a()]

    EXECUTED.clear()
    handle = engine.start_workflow(twice)
    assert handle.result(timeout=10) == ["a", "a"]
    assert EXECUTED == ["a", "a"]
    assert [s.seq for s in engine.steps(handle.run_id)] == [0, 1]
