"""Schedules through the engine, on each backend: made, read, changed, fired, triggered,
backfilled, declared in code."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

import durably
from durably.errors import ScheduleError, ScheduleNotFound
from durably.records import RunStatus
from durably.schedules import tick_run_id
from durably.testing import TestEngine
from durably.ticking import ScheduleInfo


@durably.workflow(name="sched.report")
def report(region: str = "eu") -> dict[str, Any]:
    info = durably.schedule_info()
    assert info is not None
    return {"region": region, "schedule": info.schedule_id, "kind": info.kind,
            "nominal": info.nominal.timestamp()}  # fmt: skip


@durably.workflow(name="sched.plain")
def plain() -> ScheduleInfo | None:
    return durably.schedule_info()


@durably.workflow(name="sched.waits")
def waits() -> str:
    return str(durably.wait_for_signal("never", timeout="1h"))


def eventually(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {check}")
        time.sleep(0.05)


def test_make_read_change_and_delete(engine: durably.Engine) -> None:
    s = engine.schedules
    made = s.create("daily", report, args=("us",), cron="30 9 * * MON-FRI", tz="Europe/Paris")
    assert made.workflow == "sched.report" and made.spec.tz == "Europe/Paris"
    assert made.next_tick is not None and made.next_tick > datetime.now(UTC)
    local = made.next_tick.astimezone(durably_zone("Europe/Paris"))
    assert (local.hour, local.minute) == (9, 30) and local.weekday() < 5
    assert [x.id for x in s.list()] == ["daily"] and s.get("daily") == made

    same_time = s.update("daily", queue="reports", overlap="buffer_one")
    assert same_time.spec.queue == "reports" and same_time.next_tick == made.next_tick
    moved = s.update("daily", cron="0 * * * *")
    assert moved.next_tick != made.next_tick and moved.spec.overlap == "buffer_one"

    paused = s.pause("daily", note="holiday")
    assert paused.paused and paused.note == "holiday"
    assert not s.resume("daily").paused
    s.delete("daily")
    with pytest.raises(ScheduleNotFound):
        s.get("daily")
    with pytest.raises(ScheduleNotFound):
        s.delete("daily")


def durably_zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def test_bad_input_writes_nothing(engine: durably.Engine) -> None:
    s = engine.schedules
    s.create("one", report, every="1h")
    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: s.create("one", report, every="1h"), "exists"),
        (lambda: s.create("x", "no.such.workflow", every="1h"), "unknown workflow name"),
        (lambda: s.create("x", report, args=(1, 2, 3), every="1h"), "cannot start workflow"),
        (lambda: s.create("x", report, cron="61 * * * *"), "bad minute '61'"),
        (lambda: s.create("x", report, cron="0 * * * *", tz="Nowhere/City"), "unknown time zone"),
        (lambda: s.create("x", report, every="0s"), "every must be above zero"),
        (lambda: s.create("x", report, every="1h", colour="red"), "unexpected keyword"),
        (lambda: s.update("one", cron="bad"), "cron expression 'bad' has 1 fields"),
        (lambda: s.update("missing", queue="q"), "no schedule with id 'missing'"),
        (lambda: s.update("one", colour="red"), "unexpected keyword"),
        (lambda: s.create("x", report, every="1h", paused="yes"), "paused is a bool"),  # type: ignore[arg-type]
        (lambda: s.create("x", report, every="1h", tz=None), "an IANA name"),
        (lambda: s.create("x", report, every="1h", catchup_window=0), "at least 10s"),
    ]
    for call, message in cases:
        with pytest.raises(ScheduleError, match=message):
            call()
    assert [x.id for x in s.list()] == ["one"]
    assert s.get("one").spec.every == 3600


def test_ticks_start_runs_with_derived_ids(kit: TestEngine) -> None:
    engine = kit  # ticks every second of a virtual clock
    engine.schedules.create("fast", report, kwargs={"region": "apac"}, every="1s")
    schedule = eventually(lambda: (x := engine.schedules.get("fast")).counts["started"] >= 2 and x)
    tick = engine.schedules.describe("fast").recent[-1][0]
    assert tick.run_id == tick_run_id("fast", tick.nominal)
    result = engine.handle(tick.run_id).result(timeout=10)
    assert result == {"region": "apac", "schedule": "fast", "kind": "tick", "nominal": tick.nominal}
    assert tick.nominal == int(tick.nominal)  # anchored on whole seconds
    assert schedule.last_run_id is not None


def test_trigger_backfill_and_describe(engine: durably.Engine) -> None:
    s = engine.schedules
    s.create("hourly", report, cron="0 * * * *", tz="America/New_York")
    triggered = s.trigger("hourly")
    assert triggered.result(timeout=10)["kind"] == "trigger"

    start, end = datetime(2026, 3, 8, 4, 0, tzinfo=UTC), datetime(2026, 3, 8, 9, 0, tzinfo=UTC)
    first = s.backfill("hourly", start, end)  # across the spring gap: one tick an hour
    assert (first.created, first.existed) == (6, 0)
    again = s.backfill("hourly", start, end)
    assert (again.created, again.existed) == (0, 6)
    run_id = tick_run_id("hourly", start.timestamp())
    assert engine.handle(run_id).result(timeout=10)["kind"] == "backfill"

    described = s.describe("hourly")
    assert len(described.upcoming) == 5
    assert all(t.minute == 0 and t.utcoffset() is not None for t in described.upcoming)
    assert str(described.upcoming[0].tzinfo) == "America/New_York"
    kinds = {tick.kind for tick, _ in described.recent}
    assert kinds == {"trigger", "backfill"}
    eventually(lambda: all(st == RunStatus.COMPLETED for _, st in s.describe("hourly").recent))
    with pytest.raises(ScheduleError, match="end is before start"):
        s.backfill("hourly", end, start)


def test_a_backfill_never_runs_a_tick_before_it_is_due(engine: durably.Engine) -> None:
    s = engine.schedules
    s.create("upcoming", report, every="1h")
    now = engine.store.now()
    done = s.backfill("upcoming", now - 3 * 3600, now + 5 * 3600)
    assert (done.created, done.existed) == (3, 0)  # the three past ticks only
    runs = [tick.nominal for tick, _ in s.describe("upcoming").recent]
    assert runs and max(runs) <= now
    with pytest.raises(ScheduleError, match="start is in the future"):
        s.backfill("upcoming", now + 3600, now + 7200)


def test_schedule_info_is_none_outside_schedules(engine: durably.Engine) -> None:
    assert engine.start_workflow(plain).result(timeout=10) is None
    with pytest.raises(durably.NotInWorkflow):
        durably.schedule_info()


def test_cancel_other_cancels_the_running_one(kit: TestEngine) -> None:
    engine = kit
    engine.schedules.create("latest", waits, every="1s", overlap="cancel_other")
    first = eventually(lambda: engine.schedules.get("latest").last_run_id)
    with pytest.raises(durably.WorkflowCancelled, match="started a newer run"):
        engine.handle(first).result(timeout=15)
    eventually(lambda: engine.schedules.get("latest").last_run_id != first)  # a newer one
    engine.schedules.pause("latest")  # ticks come every virtual second: hold them
    runs = sorted(engine.list_runs(workflow="sched.waits"), key=lambda r: r.run_id)
    assert first in [r.run_id for r in runs[:-1]]  # (earlier ticks may have run before it)
    # Each tick cancelled the run before it; the newest goes on (or was just cancelled,
    # its successor buffered until the pause ends): never two at once.
    assert all(r.status is RunStatus.CANCELLED for r in runs[:-1])
    assert runs[-1].status in (
        RunStatus.RUNNING,
        RunStatus.WAITING,
        RunStatus.PENDING,
        RunStatus.CANCELLED,
    )


def test_declared_schedules_are_applied_and_kept(store_url: str) -> None:
    @durably.schedule(every="1h", id="decl.hourly", args=("eu",))
    @durably.schedule(cron="0 6 * * *", tz="Asia/Tokyo", id="decl.morning")
    @durably.workflow(name="sched.declared")
    def declared(region: str = "jp") -> str:
        return region

    try:
        with durably.Engine(store_url, workflows=["sched.declared"]) as eng:
            first = {x.id: x for x in eng.schedules.list()}
            assert set(first) == {"decl.hourly", "decl.morning"}
            assert all(x.origin == "code" for x in first.values())
        with durably.Engine(store_url, workflows=["sched.declared"]) as eng:  # a restart
            assert {x.id: x.next_tick for x in eng.schedules.list()} == {
                k: v.next_tick for k, v in first.items()
            }
            specs = eng.schedules.declared([declared])
            kept = eng.schedules.apply(
                [x for x in specs if x.id == "decl.hourly"], on_removed="pause"
            )
            assert kept == {"decl.hourly": "unchanged", "decl.morning": "paused"}
            assert eng.schedules.get("decl.morning").paused
            back = eng.schedules.apply(specs, on_removed="pause")  # declared again
            assert back == {"decl.hourly": "unchanged", "decl.morning": "resumed"}
            morning = eng.schedules.get("decl.morning")
            assert not morning.paused and morning.note is None and morning.next_tick
            eng.schedules.pause("decl.morning", note="by hand")
            by_hand = eng.schedules.apply(specs, on_removed="pause")  # not apply's pause
            assert by_hand["decl.morning"] == "unchanged"
            assert eng.schedules.get("decl.morning").paused
            gone = eng.schedules.apply([], on_removed="delete")
            assert gone == {"decl.hourly": "deleted", "decl.morning": "deleted"}
    finally:  # other tests' engines register every workflow: declare nothing for them
        declared.schedules = []  # type: ignore[attr-defined]


def test_async_twins(engine: durably.Engine) -> None:
    import asyncio

    async def main() -> list[str]:
        await engine.schedules.create_async("a", report, every="1h")
        await engine.schedules.pause_async("a")
        return [x.id for x in await engine.schedules.list_async()]

    assert asyncio.run(main()) == ["a"]


def test_postgres_wakes_the_schedulers_of_other_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A schedule made elsewhere is seen at once (NOTIFY), not at the next look."""
    from durably.worker import scheduler
    from tests import postgres

    postgres.require()
    schema = postgres.new_schema()
    url = postgres.schema_url(schema)
    monkeypatch.setattr(scheduler, "POLL", 60.0)  # no look for a minute but when woken
    try:
        with durably.Engine(url) as worker, durably.Engine(url, execute=False) as client:
            time.sleep(0.5)  # the worker's scheduler sleeps now
            client.schedules.create("woken", report, every="1s")
            eventually(lambda: worker.schedules.get("woken").counts["started"] >= 1, timeout=10)
    finally:
        postgres.drop_schema(schema)
