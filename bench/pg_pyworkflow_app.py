"""The pyworkflow-engine workflows of the PostgreSQL benchmark: pg.latency and pg.three.

    PYWORKFLOW_DISCOVER=pg_pyworkflow_app PYWORKFLOW_CELERY_BROKER=redis://127.0.0.1:6379/6 \\
    PYWORKFLOW_STORAGE_TYPE=postgres PYWORKFLOW_POSTGRES_DATABASE=benchpg_... \\
    PG_BENCH_MARKS=/path/marks.txt \\
        bench/.venvs/pyworkflow/bin/python -m celery -A pyworkflow.celery.app worker \\
            -P prefork -c 1 --without-gossip --without-mingle --without-heartbeat  # cwd: bench/

The way pyworkflow-engine 0.4.0 documents running workflows on Celery: its own Celery
app (`pyworkflow.celery.app`) imports this module through PYWORKFLOW_DISCOVER, and
the runs' storage is the PostgresStorageBackend the client's `start` names (see
pg_pyworkflow_client.py). The workflows are durable and use the default run strategy
(DISTRIBUTED: each step is a Celery task of its own, the workflow task resumes after
it). The client imports this module too: `start` takes the workflow function.

Once the worker takes tasks it prints pg_common.READY, which bench/pg_measure.py waits for.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pg_common
from celery.signals import worker_ready
from pyworkflow import step, workflow


@step()
async def mark(key: str) -> None:
    pg_common.mark(Path(os.environ["PG_BENCH_MARKS"]), key)


@workflow(name="pg.latency", durable=True)
async def latency(key: str) -> None:
    await mark(key)


@step()
async def add_one(x: int) -> int:
    return x + 1


@workflow(name="pg.three", durable=True)
async def three(x: int) -> int:
    return await add_one(await add_one(await add_one(x)))


@worker_ready.connect
def _ready(**_: Any) -> None:
    # Straight to the log file: Celery and pyworkflow's logging reroute sys.stdout.
    os.write(1, f"{pg_common.READY} pid {os.getpid()}\n".encode())
