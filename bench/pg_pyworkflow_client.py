"""The pyworkflow-engine client of the PostgreSQL benchmark: starts runs, executes nothing.

    PYWORKFLOW_CELERY_BROKER=redis://127.0.0.1:6379/6 bench/.venvs/pyworkflow/bin/python \\
        bench/pg_pyworkflow_client.py init|latency|throughput URL MARKS

`init` prepares a fresh database for PostgresStorageBackend before any worker starts;
`latency` and `throughput` start runs with `pyworkflow.start` on the Celery runtime
(`configure(default_runtime="celery", storage=PostgresStorageBackend(dsn=URL))`),
which publishes a `pyworkflow.start_workflow` task to the broker; the workers (see
pg_pyworkflow_app.py) create the run in storage and execute it. Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pg_common
import pg_pyworkflow_app as app
import pyworkflow
import pyworkflow.celery.tasks  # imported once here, not by 16 threads at once
from pyworkflow.storage import postgres
from pyworkflow.storage.postgres import PostgresStorageBackend


async def connect_once(url: str) -> None:
    backend = PostgresStorageBackend(dsn=url)
    await backend.connect()  # creates the tables, runs the pending migrations
    await backend.disconnect()


async def init(url: str) -> dict[str, Any]:
    """Let the storage create its schema; say how, when the plain way fails.

    0.4.0 runs its migrations before its CREATE TABLE statements, and migration 5
    alters stream_subscriptions, which a fresh database does not have yet, so the
    first connect (and the worker's startup migrations) fail. Then the tables are
    created by the same connect with the migrations skipped, and a second connect
    migrates them as an existing schema (baseline 1, then 2 onwards).
    """
    workaround = None
    try:
        await connect_once(url)
    except asyncpg.PostgresError as exc:
        workaround = f"tables created before the migrations; plain connect: {exc}"
        runner = postgres.PostgresMigrationRunner
        migrate = runner.run_migrations

        async def skipped(self: Any) -> list[Any]:
            return []

        runner.run_migrations = skipped  # type: ignore[method-assign]
        try:
            await connect_once(url)
        finally:
            runner.run_migrations = migrate  # type: ignore[method-assign]
        await connect_once(url)
    conn = await asyncpg.connect(url)
    try:
        version = await conn.fetchval("SELECT max(version) FROM schema_versions")
    finally:
        await conn.close()
    return {"schema_version": version, "workaround": workaround}


def start(workflow: Any, arg: Any) -> None:
    """One `pyworkflow.start`, from any thread (it publishes; the worker writes the run)."""
    asyncio.run(pyworkflow.start(workflow, arg))


def throughput(url: str) -> dict[str, Any]:
    loop = asyncio.new_event_loop()  # this thread's: the database's connection lives on it
    conn = loop.run_until_complete(asyncpg.connect(url))

    def completed() -> tuple[int, float | None]:
        row = loop.run_until_complete(
            conn.fetchrow(
                "SELECT count(*) FILTER (WHERE status = 'completed') AS done, "
                "extract(epoch FROM max(completed_at)) AS last, "
                "count(*) FILTER (WHERE status = 'failed') AS failed, "
                "max(error) AS error FROM workflow_runs WHERE workflow_name = 'pg.three'"
            )
        )
        if row["failed"]:
            raise RuntimeError(f"{row['failed']} run(s) failed: {row['error']}")
        return row["done"], None if row["last"] is None else float(row["last"])

    try:
        result = pg_common.throughput(lambda i: start(app.three, i), completed)
        result["step_starts"] = loop.run_until_complete(
            conn.fetchval("SELECT count(*) FROM events WHERE type = 'step.started'")
        )  # 3 per run, more if a step began twice
        return result
    finally:
        loop.run_until_complete(conn.close())
        loop.close()


def main(action: str, url: str, marks: Path) -> dict[str, Any]:
    pyworkflow.configure_logging(level="WARNING")
    if action == "init":
        return asyncio.run(init(url))
    storage = PostgresStorageBackend(dsn=url)  # never connected here: its config goes to workers
    pyworkflow.configure(default_runtime="celery", default_durable=True, storage=storage)
    if action == "latency":
        return pg_common.latency_samples(lambda key: start(app.latency, key), marks)
    if action == "throughput":
        return throughput(url)
    raise SystemExit(f"unknown action {action!r}")


if __name__ == "__main__":
    pg_common.emit(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
