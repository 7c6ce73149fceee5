"""A DBOS process of the PostgreSQL benchmark: dequeues from the queue "bench" until SIGTERM.

    PG_BENCH_URL=postgresql://.../db PG_BENCH_MARKS=/path/marks.txt PG_BENCH_EXECUTOR=w0 \\
        bench/.venvs/dbos/bin/python bench/pg_dbos_worker.py

PG_BENCH_POLL sets the queue's polling_interval_sec (DBOS's default: 1.0). Every
process gets its own executor id; `DBOS.launch()` recovers the PENDING workflows
of that id, which is how a restarted process resumes what it was running.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pg_common
from dbos import DBOS

MARKS = Path(os.environ["PG_BENCH_MARKS"])


@DBOS.step()
def mark(key: str) -> None:
    pg_common.mark(MARKS, key)


@DBOS.workflow(name="pg.latency")
def latency(key: str) -> None:
    mark(key)


@DBOS.step()
def add_one(x: int) -> int:
    return x + 1


@DBOS.workflow(name="pg.three")
def three(x: int) -> int:
    return add_one(add_one(add_one(x)))


@DBOS.step()
def slow_step(key: str, n: int) -> None:
    pg_common.mark(MARKS, f"{key}:{n}")
    time.sleep(pg_common.SLOW_STEP_SECONDS)


@DBOS.workflow(name="pg.slow")
def slow(key: str) -> None:
    for n in range(pg_common.SLOW_STEPS):
        slow_step(key, n)


def main() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    DBOS(
        config={
            "name": "pgbench",
            "system_database_url": os.environ["PG_BENCH_URL"],
            "executor_id": os.environ["PG_BENCH_EXECUTOR"],
            "application_version": "pgbench",  # one version for every process and restart
            "log_level": "WARNING",
        }
    )
    DBOS.launch()
    DBOS.register_queue("bench", polling_interval_sec=float(os.environ.get("PG_BENCH_POLL", 1.0)))
    pg_common.wait_until(
        lambda: any(t.name == "queue-worker-bench" for t in threading.enumerate()),
        30,
        "DBOS to start polling the queue",
    )
    print(f"{pg_common.READY} pid {os.getpid()}", flush=True)
    stop.wait()
    DBOS.destroy()


if __name__ == "__main__":
    main()
