"""Queues, priorities, limits and routing, and client engines — on every backend."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

import durably

LOCK = threading.Lock()
ACTIVE: dict[str, int] = {}
PEAK: dict[str, int] = {}
STARTS: list[tuple[str, float]] = []

durably.Queue("q.global", concurrency=2)
durably.Queue("q.worker", worker_concurrency=1)
durably.Queue("q.partitioned", partition_concurrency=1)
durably.Queue("q.rated", rate_limit=(2, "1s"))


@durably.step
def occupy(group: str, seconds: float) -> None:
    with LOCK:
        ACTIVE[group] = ACTIVE.get(group, 0) + 1
        PEAK[group] = max(PEAK.get(group, 0), ACTIVE[group])
        STARTS.append((group, time.monotonic()))
    time.sleep(seconds)
    with LOCK:
        ACTIVE[group] -= 1


@durably.workflow(name="q.job")
def job(group: str, seconds: float) -> str:
    occupy(group, seconds)
    return group


@pytest.fixture
def two_workers(store_url: str) -> Iterator[list[durably.Engine]]:
    """Two executing engines on one store: peers, as two worker processes would be."""
    engines = [durably.Engine(store_url, poll_interval=0.05, workers=4) for _ in range(2)]
    for engine in engines:
        engine.launch()
    yield engines
    for engine in engines:
        engine.close()


def _group(tag: str) -> str:
    return f"{tag}-{time.monotonic_ns()}"


def test_global_concurrency_holds_across_workers(two_workers: list[durably.Engine]) -> None:
    group = _group("global")
    a, b = two_workers
    handles = [
        (a if i % 2 else b).with_options(queue="q.global").start_workflow(job, group, 0.1)
        for i in range(8)
    ]
    assert [h.result(timeout=20) for h in handles] == [group] * 8
    assert PEAK[group] == 2


def test_worker_concurrency(engine: durably.Engine) -> None:
    group = _group("worker")
    handles = [
        engine.with_options(queue="q.worker").start_workflow(job, group, 0.05) for _ in range(4)
    ]
    for handle in handles:
        handle.result(timeout=20)
    assert PEAK[group] == 1


def test_partition_keys(two_workers: list[durably.Engine]) -> None:
    group_a, group_b = _group("part-a"), _group("part-b")
    a, b = two_workers
    handles = [
        (a if i % 2 else b)
        .with_options(queue="q.partitioned", partition_key=group)
        .start_workflow(job, group, 0.1)
        for i in range(4)
        for group in (group_a, group_b)
    ]
    for handle in handles:
        handle.result(timeout=20)
    assert PEAK[group_a] == 1 and PEAK[group_b] == 1


def test_rate_limit(engine: durably.Engine) -> None:
    group = _group("rated")
    handles = [engine.with_options(queue="q.rated").start_workflow(job, group, 0) for _ in range(5)]
    for handle in handles:
        handle.result(timeout=20)
    starts = sorted(t for g, t in STARTS if g == group)
    for i, first in enumerate(starts):
        assert sum(1 for t in starts[i:] if t < first + 0.95) <= 2, starts


def test_priorities(store_url: str) -> None:
    group = _group("prio")
    client = durably.Engine(store_url, execute=False)
    try:
        handles = [
            client.with_options(queue="q.worker", priority=p).start_workflow(job, f"{group}-{p}", 0)
            for p in (1, 5, 3)
        ]
        with durably.Engine(store_url, poll_interval=0.05):
            for handle in handles:
                handle.result(timeout=20)
    finally:
        client.close()
    order = [g for g, _ in STARTS if g.startswith(group)]
    assert order == [f"{group}-5", f"{group}-3", f"{group}-1"]


def test_workers_serve_only_their_queues_and_workflows(store_url: str) -> None:
    group = _group("routing")
    client = durably.Engine(store_url, execute=False)
    try:
        routed = client.with_options(queue="billing").start_workflow(job, group, 0)
        with durably.Engine(store_url, poll_interval=0.05, queues=["elsewhere"]):
            time.sleep(0.3)
            assert routed.status() is durably.RunStatus.PENDING
        with durably.Engine(store_url, poll_interval=0.05, workflows=["other.*"]) as wrong:
            time.sleep(0.3)
            assert routed.status() is durably.RunStatus.PENDING
            assert wrong.executing_workflows() == []
        with durably.Engine(store_url, poll_interval=0.05, queues=["billing"], workflows=["q.*"]):
            assert routed.result(timeout=10) == group
    finally:
        client.close()


def test_client_starts_by_name_without_the_code(store_url: str) -> None:
    name = f"q.late.{time.monotonic_ns()}"
    client = durably.Engine(store_url, execute=False)
    try:
        handle = client.with_options(run_id="by-name").start_workflow(name, 7)
        assert client.get_run("by-name").workflow == name
        with durably.Engine(store_url, poll_interval=0.05) as worker:
            time.sleep(0.2)
            assert worker.get_run("by-name").status is durably.RunStatus.PENDING

            @durably.workflow(name=name)
            def late(x: int) -> int:
                return x * 3

            worker._executor.poke()  # type: ignore[union-attr]
            assert handle.result(timeout=10) == 21
    finally:
        client.close()


def test_bad_queue_declarations() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        durably.Queue("q.bad", concurrency=0)
    with pytest.raises(ValueError, match="period"):
        durably.Queue("q.bad", rate_limit=(1, 0))
    with pytest.raises(ValueError, match="already declared"):
        durably.Queue("q.global", concurrency=3)
