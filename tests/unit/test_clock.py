"""The store's time as seen from a host whose clock is off."""

from __future__ import annotations

from durably.clock import SYSTEM, StoreTime, SystemClock


class Fixed(SystemClock):
    """A clock that says what it is told (the store's reads are instantaneous)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    async def sleep_async(self, seconds: float) -> None:
        self.now += seconds


def test_store_time_corrects_this_host_by_the_measured_offset() -> None:
    host = Fixed(1000.0)
    store_time = StoreTime(host, lambda: 1060.0)  # the database is a minute ahead
    assert store_time.now() == 1000.0  # nothing measured yet
    store_time.measure()
    assert store_time.offset == 60.0
    host.now = 2000.0
    assert store_time.now() == 2060.0


def test_the_system_clock_reads_the_host() -> None:
    import time

    before = time.time()
    assert before <= SYSTEM.time() <= time.time()
    assert SYSTEM.monotonic() <= time.monotonic()
