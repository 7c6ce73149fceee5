"""How the PostgreSQL benchmark runs each system: interpreter, namespace, workers, client, broker.

- durably: `durably worker --app pg_durably_app:engine`, a schema of the database test.
- dbos: `pg_dbos_worker.py`, a database of its own.
- durably-celery: durably with `durably.contrib.celery.CeleryTransport`; each worker is
  `celery -A pg_celery_app worker -P prefork -c 1` (one executing process), the broker
  Redis database 5; the client is pg_durably_client.py with PG_BENCH_TRANSPORT=celery.
- pyworkflow: pyworkflow-engine 0.4.0 as its README runs it on Celery: each worker is
  `celery -A pyworkflow.celery.app worker -P prefork -c 1`, the broker Redis database 6,
  the storage its PostgresStorageBackend (asyncpg) in a database of its own, which
  `pg_pyworkflow_client.py init` prepares before the workers start.

A Celery system's Redis database is flushed before and after each measurement, and
its workers run in a process group of their own, so stopping one also ends its pool's
children. Stdlib only.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pg_common

BENCH = Path(__file__).resolve().parent
REDIS = "redis://127.0.0.1:6379"
CELERY_WORKER = ("worker", "-P", "prefork", "-c", "1")
CELERY_QUIET = ("--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO")
PYWORKFLOW_REQUIREMENT = "pyworkflow-engine[postgres,redis]==0.4.0"


@dataclass
class Setup:
    """The interpreters to run each system with."""

    durably_python: str
    dbos_python: str
    pyworkflow_python: str = ""
    unavailable: dict[str, str] = field(default_factory=dict)  # system: why it cannot run


@dataclass(frozen=True)
class System:
    venv: str  # which of Setup's interpreters runs it: durably | dbos | pyworkflow
    namespace: str  # schema (of the database test) | database (one of its own)
    worker: tuple[str, ...]  # the worker's command line after the interpreter
    ready: tuple[str, ...]  # what a worker's log shows once it takes work
    client: str  # the client script in bench/
    redis_db: int | None = None  # the Celery broker's Redis database
    init: bool = False  # the client's `init` action prepares the namespace first

    @property
    def celery(self) -> bool:
        return self.redis_db is not None

    @property
    def broker(self) -> str:
        return f"{REDIS}/{self.redis_db}"


SYSTEMS = {
    "durably": System(
        "durably",
        "schema",
        ("-m", "durably.cli", "worker", "--app", "pg_durably_app:engine"),
        ("durably worker pid",),
        "pg_durably_client.py",
    ),
    "dbos": System(
        "dbos",
        "database",
        (str(BENCH / "pg_dbos_worker.py"),),
        (pg_common.READY,),
        "pg_dbos_client.py",
    ),
    "durably-celery": System(
        "durably",
        "schema",
        ("-m", "celery", "-A", "pg_celery_app", *CELERY_WORKER, *CELERY_QUIET),
        ("durably serves Celery's wake-ups", " ready."),
        "pg_durably_client.py",
        redis_db=5,
    ),
    "pyworkflow": System(
        "pyworkflow",
        "database",
        ("-m", "celery", "-A", "pyworkflow.celery.app", *CELERY_WORKER, *CELERY_QUIET),
        (pg_common.READY,),
        "pg_pyworkflow_client.py",
        redis_db=6,
        init=True,
    ),
}

#: Printed under the table for the systems it shows.
NOTES = {
    "durably-celery": (
        "durably over Celery: Engine(url, transport=CeleryTransport(app)), broker Redis db 5 "
        "(task_acks_late, task_reject_on_worker_lost, worker_prefetch_multiplier=1); N workers "
        "= N `celery -A pg_celery_app worker -P prefork -c 1` commands; the client's engine "
        "has the transport, so each start publishes a wake-up after its commit."
    ),
    "pyworkflow": (
        "pyworkflow-engine 0.4.0: PostgresStorageBackend (asyncpg) in a fresh database per "
        "measurement, broker Redis db 6, Celery runtime, default DISTRIBUTED strategy (each "
        "step is a Celery task); N workers = N `celery -A pyworkflow.celery.app worker -P "
        "prefork -c 1` commands, its logs at WARNING (PYWORKFLOW_LOG_LEVEL). On a fresh "
        "database 0.4.0 runs migration 5 (ALTER TABLE stream_subscriptions) before it creates "
        "its tables and fails, so the benchmark creates them first with its own CREATE TABLE "
        "statements (migrations skipped), then lets it migrate them."
    ),
}


def python(setup: Setup, name: str) -> str:
    venv = SYSTEMS[name].venv
    found = getattr(setup, f"{venv}_python")
    if not found:
        raise RuntimeError(setup.unavailable.get(venv, f"no interpreter for {name}"))
    return found


def worker_command(setup: Setup, name: str) -> list[str]:
    system = SYSTEMS[name]
    command = [python(setup, name), *system.worker]
    if system.celery:  # every Celery worker of a measurement gets a node name of its own
        command += ["-n", f"pgbench-{uuid.uuid4().hex[:8]}@%h"]
    return command


def worker_env(name: str, url: str) -> dict[str, str]:
    """What a worker of `name` needs besides PG_BENCH_URL and PG_BENCH_MARKS."""
    system = SYSTEMS[name]
    if name == "durably-celery":
        return {"PG_BENCH_BROKER": system.broker}
    if name == "pyworkflow":
        parts = urlsplit(url)  # its startup migrations read the storage from the environment
        return {
            **client_env(name),
            "PYWORKFLOW_DISCOVER": "pg_pyworkflow_app",
            "PYWORKFLOW_STORAGE_TYPE": "postgres",
            "PYWORKFLOW_POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "PYWORKFLOW_POSTGRES_PORT": str(parts.port or 5432),
            "PYWORKFLOW_POSTGRES_USER": parts.username or "postgres",
            "PYWORKFLOW_POSTGRES_DATABASE": parts.path.lstrip("/"),
            "PYWORKFLOW_LOG_LEVEL": "WARNING",
        }
    return {}


def client_env(name: str) -> dict[str, str]:
    system = SYSTEMS[name]
    if name == "durably-celery":
        return {"PG_BENCH_TRANSPORT": "celery", "PG_BENCH_BROKER": system.broker}
    if name == "pyworkflow":
        return {"PYWORKFLOW_CELERY_BROKER": system.broker}
    return {}


def flush(db: int) -> None:
    done = subprocess.run(
        ["redis-cli", "-n", str(db), "flushdb"], capture_output=True, text=True, timeout=30
    )
    if done.returncode != 0 or done.stdout.strip() != "OK":
        raise RuntimeError(
            f"redis-cli -n {db} flushdb: {pg_common.last_line(done.stderr + done.stdout)}"
        )


@contextmanager
def broker(name: str) -> Iterator[None]:
    """The system's Redis database, empty at the start and emptied at the end."""
    db = SYSTEMS[name].redis_db
    if db is None:
        yield
        return
    flush(db)
    try:
        yield
    finally:
        flush(db)
