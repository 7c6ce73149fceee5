"""replay_check and ``durably replay-check``: recorded runs replayed against changed code,
with no step body run and nothing written."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import durably
from durably.testing.replay import ReplayReport, replay_check
from tests.integration.cli import cli

VERSION = {"v": "original"}
EXECUTED: list[str] = []


@durably.step
def reserve(item: str) -> str:
    EXECUTED.append("reserve")
    return f"reserved-{item}"


@durably.step
def audit(item: str) -> str:
    EXECUTED.append("audit")
    return f"audited-{item}"


@durably.step
def charge(item: str) -> str:
    EXECUTED.append("charge")
    return f"charged-{item}"


@durably.workflow(name="replay.order")
def order(item: str) -> list[str]:
    if VERSION["v"] == "raising":  # a check added that the recorded input fails
        raise LookupError(f"no stock record for {item}")
    done = [reserve(item)]
    if VERSION["v"] == "inserted":  # a step added before a recorded position
        done.append(audit(item))
    elif VERSION["v"] == "patched" and durably.patched("audit-before-charge"):
        done.append(audit(item))  # the same change, guarded: old runs keep their path
    if VERSION["v"] != "in-flight":
        done.append(charge(item))
    durably.sleep("1h")  # what comes after is not recorded yet: runs stop here
    done.append(charge(item))
    return done


@pytest.fixture
def recorded(engine: durably.Engine) -> Iterator[list[str]]:
    """Two runs recorded with the original code, sleeping after their second step."""
    VERSION["v"] = "original"
    handles = [engine.start_workflow(order, item) for item in ("lamp", "desk")]
    for handle in handles:
        _wait_status(engine, handle.run_id, durably.RunStatus.SLEEPING)
    yield [h.run_id for h in handles]
    VERSION["v"] = "original"


def _wait_status(engine: durably.Engine, run_id: str, status: durably.RunStatus) -> None:
    deadline = time.monotonic() + 15
    while engine.get_run(run_id).status is not status:
        assert time.monotonic() < deadline, engine.get_run(run_id)
        time.sleep(0.02)


def test_the_same_code_replays_cleanly(engine: durably.Engine, recorded: list[str]) -> None:
    EXECUTED.clear()
    report = replay_check(engine)
    assert report.ok and report.checked == 2 and report.divergences == []
    assert EXECUTED == []  # no step body ran


def test_a_step_inserted_before_a_recorded_position_is_reported(
    engine: durably.Engine, recorded: list[str]
) -> None:
    VERSION["v"] = "inserted"
    EXECUTED.clear()
    before = [engine.steps(r) for r in recorded]
    report = replay_check(engine)
    assert not report.ok
    assert sorted(d.run_id for d in report.divergences) == sorted(recorded)
    first = report.divergences[0]
    assert (first.workflow, first.position) == ("replay.order", 1)
    assert first.recorded.startswith("step 'charge' (called at test_replay_check.py:")
    assert first.current == "step 'audit'"
    assert "test_replay_check.py" in first.call_site
    assert EXECUTED == []
    assert [engine.steps(r) for r in recorded] == before  # nothing written
    assert all(engine.get_run(r).status is durably.RunStatus.SLEEPING for r in recorded)


def test_the_same_change_guarded_by_patched_is_accepted(
    engine: durably.Engine, recorded: list[str]
) -> None:
    VERSION["v"] = "patched"
    report = replay_check(engine)
    assert report.ok and report.checked == 2


def test_a_removed_step_is_reported(engine: durably.Engine, recorded: list[str]) -> None:
    VERSION["v"] = "in-flight"  # charge no longer called where it was recorded
    report = replay_check(engine, workflows=["replay.*"], sample=1)
    assert report.checked == 1
    (divergence,) = report.divergences
    assert divergence.position == 1 and divergence.recorded.startswith("step 'charge'")


def test_code_that_now_raises_where_the_run_did_not_is_reported(
    engine: durably.Engine, recorded: list[str]
) -> None:
    VERSION["v"] = "raising"
    report = replay_check(engine)
    assert sorted(d.run_id for d in report.divergences) == sorted(recorded)
    first = report.divergences[0]
    assert first.position == 0 and first.recorded == "no error (the run is sleeping)"
    assert first.current.startswith("raises LookupError: no stock record for ")
    assert first.call_site.startswith("test_replay_check.py:") and "in order" in first.call_site


@durably.step(retries=0)
def refuse(item: str) -> str:
    raise ValueError(f"{item} is out of stock")


@durably.workflow(name="replay.refused")
def refused(item: str) -> str:
    return refuse(item)


@durably.workflow(name="replay.async_order")
async def async_order(item: str) -> list[str]:
    first = "audit" if VERSION["v"] == "inserted" else "reserve"
    done = [await (async_audit if first == "audit" else async_reserve)(item)]
    await durably.sleep_async("1h")
    return done


@durably.step(name="replay.async_reserve")
async def async_reserve(item: str) -> str:
    return f"reserved-{item}"


@durably.step(name="replay.async_audit")
async def async_audit(item: str) -> str:
    return f"audited-{item}"


def test_a_run_that_failed_replays_to_its_own_error_cleanly(engine: durably.Engine) -> None:
    handle = engine.start_workflow(refused, "lamp")
    with pytest.raises(durably.WorkflowFailed):
        handle.result(timeout=15)
    report = replay_check(engine, workflows=["replay.refused"])
    assert report.checked == 1 and report.ok, report.divergences


def test_async_runs_are_checked_from_a_running_event_loop(engine: durably.Engine) -> None:
    VERSION["v"] = "original"
    handle = engine.start_workflow(async_order, "lamp")
    _wait_status(engine, handle.run_id, durably.RunStatus.SLEEPING)
    VERSION["v"] = "inserted"
    try:

        async def from_a_test_of_its_own() -> ReplayReport:
            return replay_check(engine, workflows=["replay.async_order"])

        report = asyncio.run(from_a_test_of_its_own())
    finally:
        VERSION["v"] = "original"
    (divergence,) = report.divergences
    assert divergence.run_id == handle.run_id and divergence.current == "step 'replay.async_audit'"


def test_runs_of_workflows_this_code_lacks_are_counted_not_checked(
    engine: durably.Engine, recorded: list[str]
) -> None:
    client = durably.Engine(engine.store, execute=False)
    client.start_workflow("replay.elsewhere", 1)
    report = replay_check(engine)
    assert report.unknown == {"replay.elsewhere": 1} and report.checked == 2
    with pytest.raises(ValueError, match="sample"):
        replay_check(engine, sample=0)


APP = """
import durably
from tests.integration.test_replay_check import order  # noqa: F401 (registers it)
"""


def test_the_command_exits_1_on_a_divergence(
    store_url: str, recorded: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    url = store_url
    same = cli("replay-check", "--store", url, "--app", "tests.integration.test_replay_check")
    assert same.code == 0 and "2 run(s) replayed, 0 divergence(s)" in same.err, same
    VERSION["v"] = "inserted"
    changed = cli(
        "replay-check", "--store", url, "--app", "tests.integration.test_replay_check", "-o", "json"
    )
    assert changed.code == 1, changed
    found = changed.json()
    assert found["checked"] == 2 and {d["position"] for d in found["divergences"]} == {1}
    assert cli("replay-check", "--store", url).code == 3  # no --app


def test_the_command_reads_the_database_of_the_apps_engine(
    store_url: str, recorded: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    elsewhere = tmp_path / "elsewhere"  # not where the default store would be
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("DURABLY_STORE", raising=False)
    module = f"replay_app_{uuid.uuid4().hex[:8]}"
    engine = f"engine = durably.Engine({store_url!r}, execute=False)\n"
    (elsewhere / f"{module}.py").write_text(APP + engine)
    try:
        for app in (module, f"{module}:engine"):  # no --store: the app's engine's database
            done = cli("replay-check", "--app", app)
            assert done.code == 0 and "2 run(s) replayed, 0 divergence(s)" in done.err, done
    finally:
        sys.modules.pop(module).engine.close()
