"""durably over Celery in the PostgreSQL benchmark: the Celery app its workers run.

    PG_BENCH_URL=postgresql://...?schema=s PG_BENCH_MARKS=/path/marks.txt \\
    PG_BENCH_BROKER=redis://127.0.0.1:6379/5 \\
        python -m celery -A pg_celery_app worker -P prefork -c 1 \\
            --without-gossip --without-mingle --without-heartbeat --loglevel INFO  # cwd: bench/

`engine` is `durably.Engine(PG_BENCH_URL, transport=CeleryTransport(app))` with the
workflows of `pg_durably_workflows`; each prefork child serves the wake-ups (its log
says "durably serves Celery's wake-ups"). The broker is Redis, database 5 unless
PG_BENCH_BROKER says otherwise, with the settings docs/celery.md recommends.

Imported without PG_BENCH_URL (by pg_durably_client.py with PG_BENCH_TRANSPORT=celery)
it makes no engine and offers `transport()`: the same app settings for the client's
engine, whose starts then publish the wake-ups.
"""

from __future__ import annotations

import os

from celery import Celery

import durably
from durably.contrib.celery import CeleryTransport

BROKER = os.environ.get("PG_BENCH_BROKER", "redis://127.0.0.1:6379/5")


def celery_app() -> Celery:
    app = Celery("pgbench", broker=BROKER)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
    )
    return app


def transport() -> CeleryTransport:
    """A transport on an app of its own, for an engine that starts runs."""
    return CeleryTransport(celery_app())


if "PG_BENCH_URL" in os.environ:  # a worker: `celery -A pg_celery_app` finds `app`
    import pg_durably_workflows  # noqa: F401  registers pg.latency, pg.three, pg.slow

    app = celery_app()
    engine = durably.Engine(
        os.environ["PG_BENCH_URL"],
        transport=CeleryTransport(app),
        lease=float(os.environ.get("PG_BENCH_LEASE", 30)),
    )
