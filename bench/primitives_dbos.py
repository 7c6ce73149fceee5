"""Peer figure for item 1: DBOS Transact holding N workflows that each sleep an hour.

    bench/.venvs/dbos/bin/python bench/primitives_dbos.py sync|async N DIR   → one JSON line

DBOS with a SQLite system database, measured like `primitives_hold.py`: memory
before DBOS is configured and once every workflow has recorded its sleep. The
process ends with ``os._exit``: the sleeping workflows hold executor threads (or
tasks) that an ordinary exit would wait an hour for.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sqlite3
import sys
import threading
import time
from pathlib import Path

from dbos import DBOS

HOUR = 3600


def status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def recorded_sleeps(db: Path) -> int:
    """Workflows whose DBOS.sleep is checkpointed (the row precedes the actual sleep)."""
    with sqlite3.connect(db) as conn:
        query = "SELECT COUNT(*) FROM operation_outputs WHERE function_name = 'DBOS.sleep'"
        return int(conn.execute(query).fetchone()[0])


@DBOS.workflow(name="prim.sleep_hour")
def sleep_hour() -> None:
    DBOS.sleep(HOUR)


@DBOS.workflow(name="prim.sleep_hour_async")
async def sleep_hour_async() -> None:
    await DBOS.sleep_async(HOUR)


async def start_async(n: int) -> list[object]:
    return [await DBOS.start_workflow_async(sleep_hour_async) for _ in range(n)]


def main(kind: str, n: int, workdir: Path) -> dict[str, object]:
    db = workdir / "dbos.sqlite"
    gc.collect()
    rss_before, threads_before = status_kb("VmRSS"), threading.active_count()
    DBOS(config={"name": "prim", "system_database_url": f"sqlite:///{db}", "log_level": "ERROR"})
    DBOS.launch()
    threads_idle = threading.active_count()
    began = time.perf_counter()
    loop = None
    if kind == "sync":
        for _ in range(n):
            DBOS.start_workflow(sleep_hour)
    else:
        loop = asyncio.new_event_loop()
        loop.run_until_complete(start_async(n))
    started = time.perf_counter() - began
    deadline = time.monotonic() + 600
    while recorded_sleeps(db) < n and time.monotonic() < deadline:
        if loop is not None:  # the workflows' tasks live on this loop: let them run
            loop.run_until_complete(asyncio.sleep(0.1))
        else:
            time.sleep(0.1)
    all_sleeping = time.perf_counter() - began
    gc.collect()
    return {
        "kind": kind,
        "runs": n,
        "start_s": started,
        "all_sleeping_s": all_sleeping,
        "sleeping": recorded_sleeps(db),
        "rss_growth_mb": (status_kb("VmRSS") - rss_before) / 1024,
        "rss_peak_growth_mb": (status_kb("VmHWM") - rss_before) / 1024,
        "threads_before": threads_before,
        "threads_idle_engine": threads_idle,
        "threads_holding": threading.active_count(),
        "loop_tasks": 0 if loop is None else len(asyncio.all_tasks(loop)),
    }


if __name__ == "__main__":
    result = main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
    print(json.dumps(result), flush=True)
    os._exit(0)
