"""How fast one scheduler decides a burst: N schedules due on the same second, fired by
``Scheduler.fire_due()`` alone (no executor runs the ticks).

    .venv/bin/python bench/schedules_fire.py [--backend postgres|sqlite] [--schedules 10000]

Waits for the next whole minute (the schedules are ``cron="* * * * *"``). Needs
PostgreSQL at postgresql://postgres@127.0.0.1/test for the postgres backend.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import durably  # noqa: E402
from durably.worker.scheduler import Scheduler  # noqa: E402

PG = "postgresql://postgres@127.0.0.1/test"


@durably.workflow(name="bench.fire.tick")
def tick() -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--schedules", type=int, default=10_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(dir=ROOT / "bench"))
    schema = f"benchfire_{int(time.time())}"
    url = f"{PG}?schema={schema}" if args.backend == "postgres" else str(workdir / "fire.db")
    try:
        engine = durably.Engine(url, execute=False)
        try:
            for i in range(args.schedules):
                engine.schedules.create(f"s{i:05d}", tick, cron="* * * * *")
            time.sleep(60 - time.time() % 60 + 0.2)  # all due now
            scheduler = Scheduler(
                engine.store, stop=threading.Event(), on_started=lambda _: None, hooks=engine.hooks
            )
            began = time.perf_counter()
            started = scheduler.fire_due()
            seconds = time.perf_counter() - began
        finally:
            engine.close()
        print(f"{args.backend}: {started:,} ticks decided in {seconds:.2f} s "
              f"({started / seconds:,.0f} a second)")  # fmt: skip
    finally:
        shutil.rmtree(workdir)
        if args.backend == "postgres":
            import psycopg

            with psycopg.connect(PG, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


if __name__ == "__main__":
    main()
