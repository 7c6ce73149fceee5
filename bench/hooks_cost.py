"""What hook subscribers cost a step: W2's 200-step workflow (steps that do nothing) on one
engine, with subscribers attached in turn, interleaved, medians of CPU and wall time.

    .venv/bin/python bench/hooks_cost.py [--cycles 40]

Variants: nothing; a subscriber that only queues (``deque.append``, no Python frame)
``step_finished``; one of ``batch_committed``; one of both (what the engine itself
spends on the two per-step events); ``durably.contrib.prometheus``'s metrics, their
counting included (needs durably[prometheus]). The variants run in ABBA order.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from prometheus_client import CollectorRegistry  # noqa: E402

import durably  # noqa: E402
from durably.contrib import prometheus  # noqa: E402
from durably.contrib.prometheus import family  # noqa: E402
from durably.hooks import BatchCommitted, StepFinished, Subscriber  # noqa: E402


@durably.step
def add_one(x: int) -> int:
    return x + 1


@durably.workflow(name="bench.hooks.chain")
def chain(n: int) -> int:
    x = 0
    for _ in range(n):
        x = add_one(x)
    return x


class Queued(Subscriber):
    def __init__(self, *events: str) -> None:
        self.queue: deque[StepFinished | BatchCommitted] = deque()
        for event in events:
            setattr(self, event, self.queue.append)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=40)
    cycles = parser.parse_args().cycles
    workdir = Path(tempfile.mkdtemp(dir=ROOT / "bench"))
    try:
        with durably.Engine(str(workdir / "hooks.db")) as engine:
            family.FOLD_EVERY = 3600.0  # the metrics count only when told to, timed below
            metrics = prometheus.instrument(engine, CollectorRegistry(), gauge_interval=3600)
            counting: list[float] = []
            metrics._unsubscribe()  # attached in turn below
            variants: dict[str, Any] = {
                "nothing": None,
                "queued step_finished": Queued("step_finished"),
                "queued batch_committed": Queued("batch_committed"),
                "queued, both": Queued("step_finished", "batch_committed"),
                "metrics": metrics._family,
            }
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
            engine.start_workflow(chain, 200).result(60)  # warm up
            order = list(variants.items())
            for cycle in range(cycles):
                for name, subscriber in order if cycle % 2 == 0 else order[::-1]:
                    detach = engine.hooks.subscribe(subscriber) if subscriber else None
                    cpu, wall = time.process_time(), time.perf_counter()
                    for _ in range(3):
                        engine.start_workflow(chain, 200).result(60)
                    if subscriber is metrics._family:
                        began = time.thread_time()
                        metrics._family.fold()  # the counting, inside the time
                        counting.append((time.thread_time() - began) / 600 * 1e6)
                    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                    samples[name].append((cpu / 600 * 1e6, wall / 600 * 1e6))
                    if detach is not None:
                        detach()
                    if isinstance(subscriber, Queued):
                        subscriber.queue.clear()
            metrics.close()
    finally:
        shutil.rmtree(workdir)
    base_cpu = statistics.median(c for c, _ in samples["nothing"])
    base_wall = statistics.median(w for _, w in samples["nothing"])
    print(f"The metrics' counting alone (their fold): {statistics.median(counting):.2f} µs/step\n")
    print("| subscribers | CPU µs/step | vs nothing | wall µs/step | vs nothing |")
    print("|---|---|---|---|---|")
    for name, values in samples.items():
        cpu = statistics.median(c for c, _ in values)
        wall = statistics.median(w for _, w in values)
        print(
            f"| {name} | {cpu:.1f} | {(cpu / base_cpu - 1) * 100:+.1f}% "
            f"| {wall:.1f} | {(wall / base_wall - 1) * 100:+.1f}% |"
        )


if __name__ == "__main__":
    main()
