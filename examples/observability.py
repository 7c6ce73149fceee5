"""Logs with the run's context, and Prometheus metrics, for a workflow whose step fails
once and is retried (needs ``pip install 'durably[prometheus]'``).

    python examples/observability.py
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

import durably
from durably.contrib import prometheus
from durably.logs import RunContextFilter

# The application's logging, with durably's run context on every record.
handler = logging.StreamHandler(sys.stdout)
handler.addFilter(RunContextFilter())
handler.setFormatter(
    logging.Formatter("%(levelname)s %(name)s [%(workflow)s %(step)s] %(message)s")
)
logging.basicConfig(level=logging.INFO, handlers=[handler])

log = durably.get_logger("shop")  # in workflow code: each line once, not once per replay
calls = {"reserve": 0}


@durably.step(retries=2, backoff=durably.Backoff(initial=0.05, factor=1, jitter=0))
def reserve(item: str) -> str:
    calls["reserve"] += 1
    logging.getLogger("shop.inventory").info("reserving %s", item)  # a plain logger, in a step
    if calls["reserve"] == 1:
        raise ConnectionError("inventory service timed out")
    return f"reserved-{item}"


@durably.workflow(name="shop.order")
def order(item: str) -> str:
    log.info("ordering %s", item)
    durably.sleep(1.2)  # long enough to suspend: the run is replayed when it wakes
    log.info("ordered %s", item)  # logged once, though the lines above were replayed
    return reserve(item)


def main() -> None:
    workdir = Path(tempfile.mkdtemp())
    try:
        engine = durably.Engine(str(workdir / "shop.db"))
        registry = CollectorRegistry()
        metrics = prometheus.instrument(engine, registry)
        with engine:
            print(f"result: {engine.start_workflow(order, 'lamp').result(timeout=30)}")
            scraped = generate_latest(registry).decode()  # what Prometheus would read
        metrics.close()
        for line in scraped.splitlines():
            if line.startswith(("durably_runs_finished_total", "durably_step_retries_total")):
                print(line)
    finally:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
