"""The durably client of the PostgreSQL benchmark: starts runs by name, executes nothing.

    python bench/pg_durably_client.py latency|throughput|slow URL MARKS

Prints one JSON line. Workers run `pg_durably_app` (see bench/postgres.py). With
PG_BENCH_TRANSPORT=celery the engine has `pg_celery_app`'s CeleryTransport, so every
start also publishes a wake-up for the Celery workers that run `pg_celery_app`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pg_common
import psycopg

import durably


def client_engine(url: str) -> durably.Engine:
    if os.environ.get("PG_BENCH_TRANSPORT") == "celery":
        import pg_celery_app

        return durably.Engine(url, execute=False, transport=pg_celery_app.transport())
    return durably.Engine(url, execute=False)


def main(action: str, url: str, marks: Path) -> dict[str, Any]:
    with client_engine(url) as engine:
        if action == "latency":
            return pg_common.latency_samples(
                lambda key: engine.start_workflow("pg.latency", key), marks
            )
        if action == "throughput":
            schema = parse_qs(urlsplit(url).query)["schema"][0]
            plain = url.split("?")[0]
            with psycopg.connect(plain, autocommit=True) as conn:

                def completed() -> tuple[int, float | None]:
                    row = conn.execute(
                        f"SELECT count(*), max(updated_at) FROM {schema}.runs "
                        "WHERE status = 'completed'"
                    ).fetchone()
                    assert row is not None
                    return row[0], row[1]

                return pg_common.throughput(
                    lambda i: engine.start_workflow("pg.three", i), completed
                )
        if action == "slow":
            runs = [engine.start_workflow("pg.slow", f"r{i}") for i in range(pg_common.SLOW_RUNS)]
            return {"runs": [run.run_id for run in runs]}
        raise SystemExit(f"unknown action {action!r}")


if __name__ == "__main__":
    pg_common.emit(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
