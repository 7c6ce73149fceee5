"""The workflows `bench/primitives.py` measures, importable by its child processes too."""

from __future__ import annotations

import threading
import time

import durably

HOUR = 3600.0


@durably.workflow(name="prim.sleep_hour")
def sleep_hour() -> None:
    durably.sleep("1h")


@durably.workflow(name="prim.sleep_hour_async")
async def sleep_hour_async() -> None:
    await durably.sleep_async("1h")


@durably.workflow(name="prim.tick")
def tick(times: int, seconds: float) -> None:
    for _ in range(times):
        durably.sleep(seconds)


@durably.workflow(name="prim.tick_async")
async def tick_async(times: int, seconds: float) -> None:
    for _ in range(times):
        await durably.sleep_async(seconds)


# Item 3: the step stamps when its body starts; the benchmark waits on `stepped`.
stamps: list[tuple[float, float]] = []  # (sent_at, step started_at), perf_counter
stepped = threading.Event()


@durably.step
def record(sent_at: float) -> None:
    stamps.append((sent_at, time.perf_counter()))
    stepped.set()


@durably.step
async def record_async(sent_at: float) -> None:
    stamps.append((sent_at, time.perf_counter()))
    stepped.set()


@durably.workflow(name="prim.listen")
def listen(rounds: int) -> None:
    for _ in range(rounds):
        record(durably.wait_for_signal("go"))


@durably.workflow(name="prim.listen_async")
async def listen_async(rounds: int) -> None:
    for _ in range(rounds):
        await record_async(await durably.wait_for_signal_async("go"))
