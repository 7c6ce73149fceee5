"""The durably app the PostgreSQL benchmark's workers run.

    PG_BENCH_URL=postgresql://...?schema=s PG_BENCH_MARKS=/path/marks.txt \\
        python -m durably.cli worker --app pg_durably_app:engine     # cwd: bench/

PG_BENCH_LEASE sets the engine's lease (default 30 s). PG_BENCH_HOSTNAME makes this
worker's lease owner name another host, so peers on this machine cannot see its
pid and must wait for the lease to expire: the path a crash on another machine takes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pg_common

import durably
import durably.worker.claimer

if os.environ.get("PG_BENCH_HOSTNAME"):
    # Lease owners are "host:pid:nonce"; a peer checks the pid only when the host is its own.
    durably.worker.claimer.HOST = os.environ["PG_BENCH_HOSTNAME"]

MARKS = Path(os.environ["PG_BENCH_MARKS"])

engine = durably.Engine(
    os.environ["PG_BENCH_URL"], lease=float(os.environ.get("PG_BENCH_LEASE", 30))
)


@durably.step
def mark(key: str) -> None:
    pg_common.mark(MARKS, key)


@durably.workflow(name="pg.latency")
def latency(key: str) -> None:
    mark(key)


@durably.step
def add_one(x: int) -> int:
    return x + 1


@durably.workflow(name="pg.three")
def three(x: int) -> int:
    return add_one(add_one(add_one(x)))


@durably.step
def slow_step(key: str, n: int) -> None:
    pg_common.mark(MARKS, f"{key}:{n}")
    time.sleep(pg_common.SLOW_STEP_SECONDS)


@durably.workflow(name="pg.slow")
def slow(key: str) -> None:
    for n in range(pg_common.SLOW_STEPS):
        slow_step(key, n)
