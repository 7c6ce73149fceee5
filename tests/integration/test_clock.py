"""The clock seam: SQLite takes "now" from the engine's clock; PostgreSQL keeps its own."""

from __future__ import annotations

import time
from pathlib import Path

import durably
from durably.clock import SystemClock
from durably.records import RunStatus
from durably.stores.sqlite import SQLiteStore
from tests import postgres


class Shifted(SystemClock):
    """The host's clock moved by ``offset`` seconds (a test's way to let time pass)."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def time(self) -> float:
        return time.time() + self.offset


@durably.workflow(name="clock.nap")
def nap() -> str:
    durably.sleep("1h")
    return "rested"


def test_sqlite_timers_follow_the_engines_clock(tmp_path: Path) -> None:
    clock = Shifted()
    store = SQLiteStore(str(tmp_path / "clock.db"), clock=clock)
    with durably.Engine(store, poll_interval=0.05) as engine:
        assert engine.clock is clock
        handle = engine.start_workflow(nap)
        deadline = time.monotonic() + 5
        while engine.get_run(handle.run_id).status is not RunStatus.SLEEPING:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        clock.offset += 2 * 3600  # two hours pass, for the store and the engine alike
        assert handle.result(timeout=10) == "rested"
        (sleep_entry,) = [s for s in engine.steps(handle.run_id) if s.kind == "sleep"]
        assert sleep_entry.output > time.time() + 3000  # the wake-up was set on that clock


def test_sqlite_now_is_the_clocks(tmp_path: Path) -> None:
    clock = Shifted(offset=-86400)
    store = SQLiteStore(str(tmp_path / "now.db"), clock=clock)
    try:
        assert abs(store.now() - (time.time() - 86400)) < 5
        (from_sql,) = store._read(store.inline("SELECT durably_now()"))[0]
        assert abs(from_sql - (time.time() - 86400)) < 5
    finally:
        store.close()


def test_postgres_keeps_the_databases_clock() -> None:
    from durably.stores.postgres import PostgresStore

    postgres.require()
    name = postgres.new_schema("clk")
    store = PostgresStore(postgres.URL, schema=name, clock=Shifted(offset=3600))
    try:
        # A host an hour ahead still reads the database's time for leases and timers.
        assert abs(store.now() - time.time()) < 60
    finally:
        store.close()
        postgres.drop_schema(name)
