"""DBOS's side of bench/schedules.py: N schedules ``"* * * * *"`` made with
``DBOS.create_schedule`` on a SQLite system database, in DBOS's own virtual environment.

    bench/.venvs/dbos/bin/python bench/schedules_dbos.py N MINUTES

Prints one JSON line with the same fields as bench/schedules.py's rows.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from dbos import DBOS

started: dict[tuple[int, float], float] = {}
lock = threading.Lock()


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@DBOS.workflow(name="bench.sched.tick")
def tick(scheduled_time: datetime, context: Any) -> None:
    with lock:
        started.setdefault((int(context), scheduled_time.timestamp()), time.time())


def main() -> None:
    count, minutes = int(sys.argv[1]), int(sys.argv[2])
    workdir = Path(tempfile.mkdtemp())
    DBOS(
        config={
            "name": "bench-schedules",
            "system_database_url": f"sqlite:///{workdir / 'dbos.sqlite'}",
            "log_level": "WARNING",
        }
    )
    DBOS.launch()
    time.sleep(1)
    threads_before, rss_before = threading.active_count(), rss_mb()
    began = time.time()
    for i in range(count):
        DBOS.create_schedule(
            schedule_name=f"s{i:05d}", workflow_fn=tick, schedule="* * * * *", context=i
        )
    made = time.time() - began
    begin = (time.time() // 60 + 2) * 60  # a whole minute of warm-up after the last is made
    end = begin + 60 * (minutes - 1)
    idle = None
    while time.time() < end + 5:
        now = time.time()
        if idle is None and now % 60 > 30 and now > begin:
            cpu0, t0 = cpu_seconds(), time.monotonic()
            time.sleep(20)
            idle = (cpu_seconds() - cpu0) / (time.monotonic() - t0)
        time.sleep(0.5)
    threads_after, rss_after = threading.active_count(), rss_mb()
    with lock:
        lags = sorted(t - nominal for (_, nominal), t in started.items() if begin <= nominal < end)
    print(
        json.dumps(
            {
                "shape": "burst",
                "schedules": count,
                "ticks": len(lags),
                "expected": count * (minutes - 1),
                "p50": statistics.median(lags) if lags else None,
                "p99": lags[min(len(lags) - 1, int(0.99 * len(lags)))] if lags else None,
                "max": lags[-1] if lags else None,
                "threads": [threads_before, threads_after],
                "rss_mb": [round(rss_before, 1), round(rss_after, 1)],
                "idle_cpu": idle,
                "created_in_s": round(made, 1),
            }
        ),
        flush=True,
    )
    DBOS.destroy()


if __name__ == "__main__":
    main()
