"""durably.testing: TestEngine and VirtualClock, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

import durably
from durably.testing import TestEngine, VirtualClock
from tests import postgres

DAY = 86400.0


@pytest.fixture(params=["sqlite", "postgres"])
def kit_store(request: pytest.FixtureRequest) -> Iterator[str]:
    """The store argument of a TestEngine of each backend: a temporary file, a schema."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    postgres.require()
    schema = postgres.new_schema()
    yield postgres.schema_url(schema)
    postgres.drop_schema(schema)


# -- one workflow that would take 37 days and 2 hours ---------------------------------
TIMES = {"sleep": "30d", "signal": "7d", "backoff": "1h", "timeout": "10m"}
SHORT = {"sleep": 0.3, "signal": 0.3, "backoff": 0.2, "timeout": 5.0}
attempts: dict[str, int] = {}


def _flaky(key: str) -> str:
    attempts[key] = attempts.get(key, 0) + 1
    if attempts[key] < 4:
        raise ConnectionError(f"attempt {attempts[key]} of {key}")
    return f"charged {key}"


def _backoff(seconds: str | float) -> durably.Backoff:
    return durably.Backoff(initial=seconds, max=seconds, factor=1.0, jitter=0)


charge_long = durably.step(
    name="kit.charge_long", retries=3, backoff=_backoff(TIMES["backoff"]), timeout=TIMES["timeout"]
)(_flaky)
charge_short = durably.step(
    name="kit.charge_short", retries=3, backoff=_backoff(SHORT["backoff"]), timeout=SHORT["timeout"]
)(_flaky)


@durably.workflow(name="kit.month")
def month(key: str, short: bool) -> dict[str, Any]:
    times: dict[str, Any] = SHORT if short else TIMES
    began = durably.now()
    durably.sleep(times["sleep"])
    approved = durably.wait_for_signal("approved", timeout=times["signal"])
    charged = (charge_short if short else charge_long)(key)
    return {"approved": approved, "charged": charged, "days": (durably.now() - began).days}


def _shape(engine: durably.Engine, run_id: str) -> list[tuple[str, str, str, int]]:
    steps = engine.steps(run_id)
    return [(s.kind, s.name.replace("_short", "_long"), s.status, s.attempts) for s in steps]


def test_a_month_of_timers_takes_no_time_and_keeps_the_real_journal(
    kit_store: str, tmp_path: Any
) -> None:
    with durably.Engine(str(tmp_path / "real.db"), poll_interval=0.05) as real:
        key = f"real-{uuid.uuid4()}"
        handle = real.start_workflow(month, key, True)
        assert handle.result(timeout=30) == {
            "approved": None,
            "charged": f"charged {key}",
            "days": 0,
        }
        expected = _shape(real, handle.run_id)

    engine = TestEngine(kit_store)
    try:
        start = engine.clock.time()
        began = time.monotonic()
        handle = engine.start_workflow(month, f"virtual-{uuid.uuid4()}", False)
        result = handle.result(timeout=30)  # 37 days and 2 hours of this clock
        took = time.monotonic() - began
        assert result["approved"] is None and result["days"] == 37
        assert engine.clock.time() - start >= 37 * DAY + 3 * 3600
        assert _shape(engine, handle.run_id) == expected
        assert took < 30  # far less in fact: the figure is printed, not asserted
        print(f"37 days of timers on {kit_store[:6]} in {took:.3f}s")
    finally:
        engine.close()


# -- manual control ------------------------------------------------------------------
@durably.workflow(name="kit.nap")
def nap(hours: int) -> float:
    durably.sleep(hours * 3600.0)
    return durably.now().timestamp()


def test_without_auto_skip_time_moves_only_when_told(kit_store: str) -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    engine = TestEngine(kit_store, clock=VirtualClock(start), auto_skip=False)
    try:
        handle = engine.start_workflow(nap, 2)
        engine.run_until_idle()
        assert engine.get_run(handle.run_id).status == "sleeping"
        engine.clock.advance("1h")
        engine.run_until_idle()
        assert engine.get_run(handle.run_id).status == "sleeping"
        engine.clock.advance("1h")
        woke = handle.result(timeout=10)
        assert start.timestamp() + 7200 <= woke < start.timestamp() + 7200 + 60
    finally:
        engine.close()


def test_the_store_time_measured_during_jumps_stays_right(kit_store: str) -> None:
    """The worker measures the store's time against its clock (a heartbeat does, every
    third of a lease); a jump in the middle of that reading used to leave the offset
    wrong by half the jump or all of it, and a retry's backoff set with it lost an hour."""
    engine = TestEngine(kit_store, auto_skip=False)
    try:
        assert engine.executor is not None
        store_time, readings, done = engine.executor.time, [], threading.Event()

        def measure() -> None:
            while not done.is_set():
                store_time.measure()
                readings.append(store_time.offset)

        measuring = threading.Thread(target=measure)
        measuring.start()
        try:
            for _ in range(200):
                engine.clock.advance("1h")
        finally:
            done.set()
            measuring.join()
        assert len(readings) > 20
        assert max(abs(offset) for offset in readings) < 60  # one host: its clocks agree
    finally:
        engine.close()


hung, release = threading.Event(), threading.Event()


@durably.step(name="kit.hang", timeout="10m", timeout_grace=0.05, retries=0)
def hang() -> str:
    hung.set()
    release.wait(60)  # real time: only the virtual clock's jump ends it
    return "never"


@durably.workflow(name="kit.times_out")
def times_out() -> str:
    try:
        return hang()
    except durably.StepFailed as failed:
        return failed.error.type


def test_a_step_timeout_fires_when_the_clock_passes_it(kit_store: str) -> None:
    hung.clear()
    release.clear()
    engine = TestEngine(kit_store)
    try:
        handle = engine.start_workflow(times_out)
        assert hung.wait(10)
        engine.clock.advance("9m")  # a body is executing: nothing skips on its own
        assert engine.get_run(handle.run_id).status == "running"
        engine.clock.advance("1m")
        assert handle.result(timeout=10) == "StepTimeout"
    finally:
        release.set()
        engine.close()


def test_schedules_fire_on_the_virtual_clock(kit_store: str) -> None:
    start = datetime(2031, 6, 1, 0, 0, 30, tzinfo=UTC)
    engine = TestEngine(kit_store, clock=VirtualClock(start), auto_skip=False)
    try:
        engine.schedules.create("hourly", nap, args=(0,), every="1h", catchup="all")
        for _ in range(3):
            engine.clock.advance("1h")
            engine.run_until_idle()
        ticks = engine.store.ticks("hourly", 10)
        assert len(ticks) == 3
        assert all(t.nominal % 3600 == 0 for t in ticks)
        assert all(engine.get_run(t.run_id).status == "completed" for t in ticks)
    finally:
        engine.close()


def test_two_engines_with_two_clocks_in_two_threads() -> None:
    results: dict[int, float] = {}
    errors: list[BaseException] = []

    def one(days: int) -> None:
        try:
            engine = TestEngine(clock=VirtualClock(datetime(2040, 1, 1, tzinfo=UTC)))
            try:
                results[days] = engine.start_workflow(nap, days * 24).result(timeout=30)
            finally:
                engine.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(d,)) for d in (1, 300)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    origin = datetime(2040, 1, 1, tzinfo=UTC).timestamp()
    assert origin + 1 * DAY <= results[1] < origin + 2 * DAY
    assert origin + 300 * DAY <= results[300] < origin + 301 * DAY


def test_the_pytest_fixtures(durably_engine: TestEngine, virtual_clock: VirtualClock) -> None:
    assert durably_engine.clock is virtual_clock
    before = virtual_clock.time()
    assert durably_engine.start_workflow(nap, 24 * 7).result(timeout=10) >= before + 7 * DAY


def test_a_test_engine_closed_twice_is_closed(kit_store: str) -> None:
    clock = VirtualClock()
    engine = TestEngine(kit_store, clock=clock)  # as a fixture closes it after the test
    engine.close()
    engine.close()
    clock.advance(60)  # it no longer follows the clock


def test_bad_clock_and_store_are_typed_errors() -> None:
    with pytest.raises(TypeError, match="VirtualClock"):
        TestEngine(clock=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="start"):
        VirtualClock("tomorrow")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        VirtualClock().advance("-1h")


@durably.step(name="kit.async_quick", timeout="1h")
async def async_quick(n: int) -> int:
    return n + 1


@durably.workflow(name="kit.async_naps")
async def async_naps() -> list[int]:
    out = []
    for n in range(3):
        await durably.sleep_async(0.9)  # short: the run stays resident, the clock skips it
        out.append(await async_quick(n))
    await durably.sleep_async("2d")
    return out


def test_async_workflows_follow_the_clock(kit_store: str) -> None:
    engine = TestEngine(kit_store)
    try:
        start = engine.clock.time()
        assert engine.start_workflow(async_naps).result(timeout=20) == [1, 2, 3]
        assert engine.clock.time() - start >= 2 * DAY + 2.7
    finally:
        engine.close()


def test_virtual_clock_sleeps_end_on_a_jump() -> None:
    import asyncio
    from concurrent.futures import Future

    clock = VirtualClock(1_000_000.0)
    assert 1_000_000.0 <= clock.time() < 1_000_010.0
    woke: list[float] = []

    def nap() -> None:
        clock.sleep(3600)
        woke.append(clock.time())

    sleeper = threading.Thread(target=nap)
    sleeper.start()
    while not clock.sleeping():
        time.sleep(0.001)
    clock.advance("1h")
    sleeper.join(5)
    assert woke and woke[0] >= 1_000_000.0 + 3600
    assert clock.sleeping() == []

    future: Future[int] = Future()
    with pytest.raises(TimeoutError):
        threading.Timer(0.05, clock.advance, args=("10m",)).start()
        clock.result_within(future, 600)
    future.set_result(7)
    assert clock.result_within(future, 1) == 7

    async def main() -> None:
        hang = asyncio.get_running_loop().create_future()
        threading.Timer(0.05, clock.advance, args=("10m",)).start()
        with pytest.raises(TimeoutError):
            await clock.within_async(hang, 600)
        assert hang.cancelled()
        threading.Timer(0.05, clock.advance, args=("1d",)).start()
        await clock.sleep_async(86400)

    began = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - began < 30  # not a day
    assert clock.advance_to(0) >= 1_000_000.0 + 3600 + 600 * 2 + 86400  # never back
