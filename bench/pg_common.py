"""Shared plumbing of the PostgreSQL benchmark (stdlib only; every venv imports it).

The workflows of both systems record the moment a step body starts with `mark`, as
one appended line ``key pid time.time()`` in a file outside either library's
database; the orchestrator and the clients read those lines back with `read_marks`.
The client loops (`latency_samples`, `throughput`) take the system's start call
as a function, so durably and DBOS are driven by the same code.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "systems"))
from common import json_line, last_line, wait_until

__all__ = ["json_line", "last_line", "wait_until"]

LATENCY_SAMPLES = 200
LATENCY_WARMUP = 10  # started first and left out: connection set-up, first claims
LATENCY_SPACING = 0.02  # seconds between two starts: latency, not throughput
THROUGHPUT_WORKFLOWS = 1000
ENQUEUE_THREADS = 16  # the client enqueues in parallel so arrivals outpace the workers
SLOW_RUNS = 4
SLOW_STEPS = 10
SLOW_STEP_SECONDS = 0.5
READY = "pg-bench ready"  # what a DBOS worker prints once its queue is polled


def mark(path: Path, key: str) -> None:
    """Record that a step body with this key starts now, in this process."""
    started = time.time()
    with open(path, "a") as f:  # one short O_APPEND write per line: lines never interleave
        f.write(f"{key} {os.getpid()} {started:.6f}\n")


def read_marks(path: Path) -> list[tuple[str, int, float]]:
    """Every recorded step start as (key, pid, time), in file order."""
    if not path.exists():
        return []
    marks = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:  # a line being written right now is skipped until complete
            marks.append((parts[0], int(parts[1]), float(parts[2])))
    return marks


def first_marks(path: Path) -> dict[str, float]:
    """Per key, the time its step body first started."""
    first: dict[str, float] = {}
    for key, _pid, t in read_marks(path):
        first.setdefault(key, t)
    return first


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least p% of them at or below."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def emit(result: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def latency_samples(start: Callable[[str], None], marks: Path) -> dict[str, Any]:
    """Start runs one at a time, spaced, and time each from the start call to its first step.

    Open loop: a start does not wait for the previous run, so a system that polls
    picks up several runs per poll, each still timed from its own start call.
    """
    total = LATENCY_WARMUP + LATENCY_SAMPLES
    sent: dict[str, float] = {}
    for i in range(total):
        key = f"s{i}"
        sent[key] = time.time()
        start(key)
        pause = sent[key] + LATENCY_SPACING - time.time()
        if pause > 0:
            time.sleep(pause)
    wait_until(lambda: len(first_marks(marks)) >= total, 120, "every sample's first step")
    started = first_marks(marks)
    measured = [f"s{i}" for i in range(LATENCY_WARMUP, total)]
    ms = [(started[key] - sent[key]) * 1000 for key in measured]
    began = [started[key] for key in measured]
    return {
        "repeats": len(read_marks(marks)) - len(started),  # step bodies that began twice
        # First steps per second over the samples; below 1 / LATENCY_SPACING the system
        # did not keep up with the starts and the latencies include a growing queue.
        "steps_per_s": (len(began) - 1) / (max(began) - min(began)),
        "min_ms": min(ms),
        "median_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms),
        "samples": len(ms),
    }


def throughput(
    start: Callable[[int], None], completed: Callable[[], tuple[int, float | None]]
) -> dict[str, Any]:
    """Enqueue the workflows from parallel threads, then wait until all completed.

    `completed` returns how many finished and the database time of the last
    finish; the span is from the first start call to that time.
    """
    count = THROUGHPUT_WORKFLOWS
    began = time.time()
    with ThreadPoolExecutor(ENQUEUE_THREADS) as pool:
        list(pool.map(start, range(count)))
    enqueued = time.time() - began
    while (finished := completed())[0] < count:
        if time.time() - began > 600:
            raise TimeoutError(f"only {finished[0]} of {count} completed after 600 s")
        time.sleep(0.02)
    assert finished[1] is not None
    seconds = finished[1] - began
    return {"wf_per_s": count / seconds, "seconds": seconds, "enqueue_s": enqueued}
