"""The Celery app the transport's tests run real workers of (``celery -A ... worker``).

Configured by the environment the test gives the worker: ``CELERY_TEST_BROKER``,
``CELERY_TEST_STORE`` (the database), ``CELERY_TEST_MARKS`` (a file each step body
appends a line to: the run, the step, the process), ``CELERY_TEST_SENT`` (a file each
published message's eta/countdown is appended to), ``CELERY_TEST_VISIBILITY`` (Redis's
visibility timeout), ``CELERY_TEST_ACKS_LATE``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from celery import Celery, signals

import durably
from durably.contrib.celery import CeleryTransport

broker = os.environ.get("CELERY_TEST_BROKER", "redis://127.0.0.1:6379/0")
app = Celery("durably_celery_tests", broker=broker)
app.conf.update(
    task_acks_late=os.environ.get("CELERY_TEST_ACKS_LATE", "1") == "1",
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    task_default_queue=os.environ.get("CELERY_TEST_QUEUE", "celery"),
)
if "CELERY_TEST_VISIBILITY" in os.environ:
    app.conf.broker_transport_options = {
        "visibility_timeout": float(os.environ["CELERY_TEST_VISIBILITY"])
    }

ROUTED = os.environ.get("CELERY_TEST_ROUTED", "routed")
transport = CeleryTransport(
    app,
    route=lambda workflow, queue: ROUTED if workflow == "celery.routed" else None,
    sweep_interval=0.2,
    probe_interval=0.5,
    rewake=5.0,
)
engine = durably.Engine(
    os.environ.get("CELERY_TEST_STORE", "durably.db"),
    transport=transport,
    lease=os.environ.get("CELERY_TEST_LEASE", "5"),
    poll_interval=0.2,
    shutdown_grace=5,
    workflows=os.environ.get("CELERY_TEST_WORKFLOWS", "*").split(","),
)
one_at_a_time = durably.Queue("one", concurrency=1)


def _mark(what: str) -> None:
    path = os.environ.get("CELERY_TEST_MARKS")
    if path:
        with open(path, "a") as marks:
            marks.write(f"{what} {os.getpid()} {time.time()}\n")


def _record_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    path = os.environ.get("CELERY_TEST_SENT")
    if path and headers is not None:
        with open(path, "a") as sent:
            sent.write(json.dumps([headers.get("eta"), headers.get("countdown")]) + "\n")


signals.before_task_publish.connect(_record_publish)


@durably.step
def work(run: str, n: int, seconds: float) -> int:
    _mark(f"{run}:{n}")
    time.sleep(seconds)
    return n


@durably.workflow(name="celery.steps")
def steps(run: str, count: int, seconds: float = 0.0, nap: float = 0.0) -> int:
    """``count`` steps of ``seconds`` each, with a sleep of ``nap`` after the first."""
    total = 0
    for n in range(count):
        total += work(run, n, seconds)
        if n == 0 and nap:
            durably.sleep(nap)
    return total


@durably.workflow(name="celery.routed")
def routed(run: str) -> int:
    return work(run, 0, 0.0)


@durably.workflow(name="celery.parent")
def parent(run: str) -> int:
    return durably.start_child(steps, f"{run}-child", 2).result() + 1


@durably.workflow(name="celery.waits")
def waits(run: str) -> str:
    work(run, 0, 0.0)
    got: str = durably.wait_for_signal("go", timeout=600)
    work(run, 1, 0.0)
    return got
