"""Item 1 in a fresh process: one engine holds N runs that each sleep an hour.

    python bench/primitives_hold.py sync|async N DB   → one JSON line

Memory is read from /proc/self/status before the engine exists and once every
run is ``sleeping``; a fresh process keeps other measurements out of the figure.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import threading
import time

import primitives_workflows as wfs

import durably


def status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def count(engine: durably.Engine, status: str, n: int) -> int:
    return len(engine.list_runs(status=status, limit=n + 1))


def loop_tasks(engine: durably.Engine) -> int:
    """Tasks alive on the engine's event loop, not counting the one that asks."""

    async def ask() -> int:
        return len(asyncio.all_tasks()) - 1

    loop = engine._executor._loop  # type: ignore[union-attr]
    return asyncio.run_coroutine_threadsafe(ask(), loop).result(timeout=10)


def main(kind: str, n: int, db: str) -> dict[str, object]:
    wf = wfs.sleep_hour if kind == "sync" else wfs.sleep_hour_async
    gc.collect()
    rss_before, threads_before = status_kb("VmRSS"), threading.active_count()
    engine = durably.Engine(db).launch()
    threads_idle = threading.active_count()
    began = time.perf_counter()
    for _ in range(n):
        engine.start_workflow(wf)
    started = time.perf_counter() - began
    while count(engine, "sleeping", n) < n:
        time.sleep(0.1)
    all_sleeping = time.perf_counter() - began
    gc.collect()
    executor = engine._executor
    assert executor is not None
    result = {
        "kind": kind,
        "runs": n,
        "start_s": started,
        "all_sleeping_s": all_sleeping,
        "rss_growth_mb": (status_kb("VmRSS") - rss_before) / 1024,
        "rss_peak_growth_mb": (status_kb("VmHWM") - rss_before) / 1024,
        "threads_before": threads_before,
        "threads_idle_engine": threads_idle,
        "threads_holding": threading.active_count(),
        "worker_threads": len(executor._pool._threads),
        "inflight": len(executor.inflight),
        "loop_tasks": loop_tasks(engine),
        "db_mb": os.path.getsize(db) / 2**20,
        "wal_mb": os.path.getsize(db + "-wal") / 2**20,
    }
    began = time.perf_counter()
    engine.close()
    result["shutdown_s"] = time.perf_counter() - began
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), sys.argv[3])))
