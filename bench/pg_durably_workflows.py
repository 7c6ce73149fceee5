"""The durably workflows of the PostgreSQL benchmark, for every durably app that runs them.

Importing this module registers pg.latency, pg.three and pg.slow by name. The apps
(`pg_durably_app` for `durably worker`, `pg_celery_app` for Celery workers) import it
and make their own engine; the clients start the runs by name and never import it.
PG_BENCH_MARKS names the file the step starts are recorded in (see pg_common.mark).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pg_common

import durably

MARKS = Path(os.environ["PG_BENCH_MARKS"])


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
