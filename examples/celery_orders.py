"""durably's runs on Celery workers, with Redis as the broker (``pip install 'durably[celery]'``).

    python examples/celery_orders.py        # Redis at localhost:6379, or CELERY_BROKER_URL

Starts a Celery worker (prefork, two processes) of this module, then, as a client,
three orders that sleep between their steps and one that waits for a signal; prints
their results and stops the worker with a warm shutdown. The runs' state and timers
are in a SQLite file; Celery only carries "this run is runnable" (docs/celery.md).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from celery import Celery

import durably
from durably.contrib.celery import CeleryTransport

HERE = Path(__file__).resolve().parent
# Set by the client for the worker it starts (the same database, a queue of its own).
if "ORDERS_DB" not in os.environ:
    os.environ["ORDERS_DB"] = str(Path(tempfile.mkdtemp()) / "orders.db")
DATABASE = os.environ["ORDERS_DB"]
QUEUE = os.environ.setdefault("ORDERS_QUEUE", f"orders-{uuid.uuid4().hex[:8]}")

app = Celery("orders", broker=os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379/0"))
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
)
engine = durably.Engine(DATABASE, transport=CeleryTransport(app))


@durably.step
def charge(order_id: str, cents: int) -> str:
    return f"receipt-{order_id}-{cents}"


@durably.step
def ship(order_id: str) -> str:
    return f"tracking-{order_id}"


@durably.step
def where() -> int:
    return os.getpid()


@durably.workflow(name="orders.fulfil")
def fulfil(order_id: str, cents: int) -> dict[str, object]:
    receipt = charge(order_id, cents)
    durably.sleep(1)  # a timer in the database, never a Celery eta
    return {"receipt": receipt, "tracking": ship(order_id), "pid": where()}


@durably.workflow(name="orders.approve")
def approve(order_id: str) -> str:
    decision = durably.wait_for_signal("decision", timeout=60)
    return f"{order_id} {decision}"


def start_worker(log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "celery", "-A", "celery_orders", "worker", "-c", "2"]
    command += ["--without-gossip", "--without-mingle", "--loglevel", "INFO"]
    with log.open("w") as out:
        worker = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while log.read_text().count("durably serves Celery's wake-ups") < 2:  # both processes
        if worker.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the Celery worker did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)
    return worker


def main() -> None:
    folder = Path(DATABASE).parent
    worker = start_worker(folder / "worker.log")
    try:
        orders = [engine.start_workflow(fulfil, f"o-{n}", n * 1000) for n in (1, 2, 3)]
        approval = engine.start_workflow(approve, "o-9")
        engine.send_signal(approval.run_id, "decision", "approved")
        pids = set()
        for order in orders:
            result = order.result(timeout=60)
            pids.add(result.pop("pid"))
            print(f"order: {result}")
        print(f"approval: {approval.result(timeout=60)}")
        print(f"ran in {len(pids)} process(es) of the Celery worker, none in this one")
    finally:
        worker.send_signal(signal.SIGTERM)  # a warm shutdown: runs would be released
        code = worker.wait(30)
        engine.close()
        shutil.rmtree(folder)
    print(f"worker stopped: exit code {code}")


if __name__ == "__main__":
    main()
