"""The DBOS client of the PostgreSQL benchmark: enqueues on the queue "bench" with DBOSClient.

    bench/.venvs/dbos/bin/python bench/pg_dbos_client.py latency|throughput|slow URL MARKS

Prints one JSON line. Workers run `pg_dbos_worker.py` (see bench/postgres.py).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pg_common
import psycopg
from dbos import DBOSClient


def main(action: str, url: str, marks: Path) -> dict[str, Any]:
    client = DBOSClient(
        system_database_url=url, system_database_pool_size=pg_common.ENQUEUE_THREADS
    )

    def start(workflow: str, arg: Any) -> None:
        client.enqueue({"workflow_name": workflow, "queue_name": "bench"}, arg)

    try:
        if action == "latency":
            return pg_common.latency_samples(lambda key: start("pg.latency", key), marks)
        if action == "throughput":
            with psycopg.connect(url, autocommit=True) as conn:

                def completed() -> tuple[int, float | None]:
                    row = conn.execute(
                        "SELECT count(*), max(updated_at) FROM dbos.workflow_status "
                        "WHERE status = 'SUCCESS' AND name = 'pg.three'"
                    ).fetchone()
                    assert row is not None
                    return row[0], None if row[1] is None else row[1] / 1000

                result = pg_common.throughput(lambda i: start("pg.three", i), completed)
                result["by_worker"] = dict(
                    conn.execute(
                        "SELECT executor_id, count(*) FROM dbos.workflow_status "
                        "WHERE name = 'pg.three' GROUP BY executor_id ORDER BY executor_id"
                    ).fetchall()
                )
                return result
        if action == "slow":
            for i in range(pg_common.SLOW_RUNS):
                start("pg.slow", f"r{i}")
            return {"runs": pg_common.SLOW_RUNS}
        raise SystemExit(f"unknown action {action!r}")
    finally:
        client.destroy()


if __name__ == "__main__":
    pg_common.emit(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
