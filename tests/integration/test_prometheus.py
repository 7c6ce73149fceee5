"""Prometheus metrics on the hooks: exact counts of what ran, bounded labels, the fleet's
gauges from one process only, the HTTP exposition, and the import without the extra."""

from __future__ import annotations

import importlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import durably
from durably.contrib.prometheus import LOCK, instrument, serve
from durably.hooks import BatchCommitted, RunLost, StepFinished, Subscriber
from durably.testing import TestEngine

SRC = str(Path(durably.__file__).resolve().parents[1])
ATTEMPTS: Counter[str] = Counter()
MODE = {"changed": False}
BLOCK = threading.Event()
BLOCKED = threading.Event()


def series(scraped: CollectorRegistry | str, name: str) -> dict[str, float]:
    """The samples named ``name`` (of a registry, or of a scrape's text), by their labels
    written ``k=v,k=v`` (sorted)."""
    text = scraped if isinstance(scraped, str) else generate_latest(scraped).decode()
    return {
        ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def label_values(registry: CollectorRegistry) -> set[str]:
    text = generate_latest(registry).decode()
    return {
        v
        for f in text_string_to_metric_families(text)
        for s in f.samples
        for v in s.labels.values()
    }


def until(check: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@durably.step
def add_one(x: int) -> int:
    return x + 1


@durably.step(retries=2, backoff=0.01)
def wobbly(key: str) -> str:
    ATTEMPTS[key] += 1
    if ATTEMPTS[key] == 1:
        raise RuntimeError("first attempt fails")
    return key


@durably.step(retries=1, backoff=0.01)
def doomed() -> None:
    raise ValueError("always")


@durably.workflow(name="prom.ok")
def ok(x: int) -> int:
    return add_one(add_one(x))


@durably.workflow(name="prom.retried")
def retried(key: str) -> str:
    return wobbly(key)


@durably.workflow(name="prom.fails")
def fails() -> None:
    doomed()


def test_counts_are_what_ran(engine: durably.Engine, request: pytest.FixtureRequest) -> None:
    registry = CollectorRegistry()
    with instrument(engine, registry, gauge_interval=0.2):
        done = engine.start_workflow(ok, 1)
        again = engine.start_workflow(retried, request.node.name)
        failed = engine.start_workflow(fails)
        assert done.result(timeout=15) == 3
        assert again.result(timeout=15) == request.node.name
        with pytest.raises(durably.WorkflowFailed):
            failed.result(timeout=15)
        until(
            lambda: sum(series(registry, "durably_runs_finished_total").values()) == 3,
            "every run's end counted",
        )

        assert series(registry, "durably_runs_started_total") == {
            "queue=default,workflow=prom.ok": 1,
            "queue=default,workflow=prom.retried": 1,
            "queue=default,workflow=prom.fails": 1,
        }
        assert series(registry, "durably_runs_finished_total") == {
            "queue=default,status=completed,workflow=prom.ok": 1,
            "queue=default,status=completed,workflow=prom.retried": 1,
            "queue=default,status=failed,workflow=prom.fails": 1,
        }
        attempts = {
            "step=add_one,workflow=prom.ok": 2,
            "step=wobbly,workflow=prom.retried": 2,
            "step=doomed,workflow=prom.fails": 2,
        }
        assert series(registry, "durably_step_attempts_total") == attempts
        assert series(registry, "durably_step_duration_seconds_count") == attempts
        assert series(registry, "durably_step_retries_total") == {
            "step=wobbly,workflow=prom.retried": 1,
            "step=doomed,workflow=prom.fails": 1,
        }
        assert series(registry, "durably_run_duration_seconds_count") == {
            "status=completed,workflow=prom.ok": 1,
            "status=completed,workflow=prom.retried": 1,
            "status=failed,workflow=prom.fails": 1,
        }
        claims = series(registry, "durably_schedule_to_start_seconds_count")
        assert list(claims) == ["queue=default"] and claims["queue=default"] >= 3
        for name in ("durably_recoveries_total", "durably_leases_lost_total"):
            assert series(registry, name) == {}
        assert series(registry, "durably_nondeterminism_errors_total") == {}
        scraped = generate_latest(registry).decode()  # one scrape: commits go on meanwhile
        (batches,) = series(scraped, "durably_commit_batch_size_count").values()
        (writes,) = series(scraped, "durably_commit_batch_size_sum").values()
        assert batches >= 1 and writes >= batches
        assert series(scraped, "durably_store_commit_seconds_count") == {"": batches}

        run_ids = {done.run_id, again.run_id, failed.run_id}
        assert not run_ids & label_values(registry)


@durably.step(retries=0)
def first() -> str:
    return "a"


@durably.step(retries=0)
def other() -> str:
    return "b"


@durably.step(retries=0)
def gate() -> str:
    if not MODE["changed"]:
        raise RuntimeError("fail so the run can be retried with other code")
    return "!"


@durably.workflow(name="prom.evolving")
def evolving() -> str:
    head = other() if MODE["changed"] else first()
    return head + gate()


@durably.workflow(name="prom.chain")
def chain(link: int) -> int:
    if link < 2:
        durably.continue_as_new(link + 1)
    return link


def test_each_run_of_a_continue_as_new_chain_is_counted_started_and_finished(
    engine: durably.Engine,
) -> None:
    registry = CollectorRegistry()
    with instrument(engine, registry):
        assert engine.start_workflow(chain, 0).result(timeout=15) == 2
        finished = "durably_runs_finished_total"
        until(lambda: sum(series(registry, finished).values()) == 3, "the three ends")
        started = series(registry, "durably_runs_started_total")
        assert started == {"queue=default,workflow=prom.chain": 3}  # never more ends than starts


def test_a_non_determinism_error_is_counted(engine: durably.Engine) -> None:
    registry = CollectorRegistry()
    MODE["changed"] = False
    with instrument(engine, registry, gauge_interval=0.2):
        handle = engine.start_workflow(evolving)
        with pytest.raises(durably.WorkflowFailed):
            handle.result(timeout=15)
        MODE["changed"] = True
        with pytest.raises(durably.WorkflowFailed) as info:
            engine.retry(handle.run_id).result(timeout=15)
        assert info.value.error_type == "NonDeterminismError"
        until(
            lambda: series(registry, "durably_nondeterminism_errors_total") != {},
            "the non-determinism error counted",
        )
        assert series(registry, "durably_nondeterminism_errors_total") == {
            "workflow=prom.evolving": 1
        }
        assert series(registry, "durably_runs_finished_total") == {
            "queue=default,status=failed,workflow=prom.evolving": 2
        }


@durably.step
def held() -> str:
    BLOCKED.set()
    assert BLOCK.wait(15)
    return "done"


@durably.workflow(name="prom.held")
def holding() -> str:
    return held()


def test_slots_in_use_are_this_engines_runs(engine: durably.Engine) -> None:
    registry = CollectorRegistry()
    BLOCK.clear()
    BLOCKED.clear()
    slots = "durably_worker_slots_in_use"
    with instrument(engine, registry, gauge_interval=0.2):
        assert series(registry, slots) == {"": 0}
        handle = engine.start_workflow(holding)
        assert BLOCKED.wait(15)
        assert series(registry, slots) == {"": 1}
        BLOCK.set()
        assert handle.result(timeout=15) == "done"
        until(lambda: series(registry, slots) == {"": 0}, "the slot freed")


def test_a_recovery_is_counted(store_url: str) -> None:
    with durably.Engine(store_url, execute=False) as client:
        handle = client.with_options(queue="prom.q").start_workflow(ok, 2)
        store = client.store  # a worker claims the run for a short lease, then dies
        assert store.transact(lambda tx: store.claim_runs(tx, "ghost", 10, 0.2, ["prom.ok"]))
    registry = CollectorRegistry()
    with (
        durably.Engine(store_url, poll_interval=0.05, shutdown_grace=2) as worker,
        instrument(worker, registry, gauge_interval=0.2),
    ):
        assert worker.handle(handle.run_id).result(timeout=15) == 4
        recoveries = "durably_recoveries_total"
        until(lambda: series(registry, recoveries) != {}, "the recovery counted")
        assert series(registry, recoveries) == {"queue=prom.q,workflow=prom.ok": 1}
        assert handle.run_id not in label_values(registry)


ENGINES: list[durably.Engine] = []
STOLEN = threading.Event()


@durably.step
def stolen_from_under_me() -> str:
    """Another worker takes the run over while this body runs (its first time only)."""
    if STOLEN.is_set():  # run again, recovered from the thief: no second theft
        return "again"
    engine = ENGINES[0]
    assert engine.executor is not None
    executor_owner = engine.executor.owner
    engine.store.release_owner(executor_owner)
    store = engine.store
    # This engine may claim the released run before the thief does: release it again.
    while not store.transact(lambda tx: store.claim_runs(tx, "thief", 10, 60.0, ["prom.stolen"])):
        store.release_owner(executor_owner)
    STOLEN.set()
    return "late"


@durably.workflow(name="prom.stolen")
def stolen() -> str:
    return stolen_from_under_me()


class LostRuns(Subscriber):
    """The runs whose lease this engine lost, as the hooks told them."""

    def __init__(self) -> None:
        self.lost: list[str] = []

    def run_lost(self, event: RunLost) -> None:
        self.lost.append(event.run_id)


def test_a_lost_lease_is_counted(engine: durably.Engine) -> None:
    registry = CollectorRegistry()
    ENGINES[:] = [engine]
    STOLEN.clear()
    told = LostRuns()
    engine.hooks.subscribe(told)  # before the metrics: told first
    with instrument(engine, registry, gauge_interval=0.2):
        handle = engine.start_workflow(stolen)
        assert STOLEN.wait(15)
        executor = engine.executor
        assert executor is not None
        until(lambda: bool(told.lost) and handle.run_id not in executor.inflight, "the run lost")
        # The theft may race the engine's own claim of the released run: then two
        # executions lose it. Each loss told is counted.
        lost = "durably_leases_lost_total"
        until(
            lambda: series(registry, lost) == {"workflow=prom.stolen": len(told.lost)},
            f"{len(told.lost)} lost lease(s) counted",
        )
        assert handle.run_id not in label_values(registry)


@durably.workflow(name="prom.ticked")
def ticked() -> str:
    return "tick"


def test_schedule_ticks_are_counted(kit: TestEngine) -> None:
    engine = kit
    registry = CollectorRegistry()
    ticks = "durably_schedule_ticks_total"
    with instrument(engine, registry, gauge_interval=0.2):
        engine.schedules.create("prom.every", ticked, every="1s")
        until(
            lambda: series(registry, ticks).get("outcome=started,workflow=prom.ticked", 0) >= 2,
            "two ticks started",
        )
        engine.schedules.delete("prom.every")
        outcomes = ("started", "skipped", "buffered", "missed")
        assert set(series(registry, ticks)) <= {
            f"outcome={o},workflow=prom.ticked" for o in outcomes
        }

        def started_runs() -> float:
            return series(registry, "durably_runs_started_total").get(
                "queue=default,workflow=prom.ticked", 0
            )

        # Each started tick is a run started (told after the decision, with its run).
        until(
            lambda: (
                started_runs() == series(registry, ticks)["outcome=started,workflow=prom.ticked"]
            ),
            "a run started per started tick",
        )


def test_one_process_of_a_fleet_exports_the_database_gauges(store_url: str) -> None:
    with (
        durably.Engine(store_url, execute=False) as a,
        durably.Engine(store_url, execute=False) as b,
    ):
        for x in range(3):
            a.with_options(queue="prom.idle").start_workflow(ok, x)
        registries = [CollectorRegistry(), CollectorRegistry()]
        metrics = [
            instrument(e, r, gauge_interval=0.2) for e, r in zip([a, b], registries, strict=True)
        ]
        try:

            def exporting() -> list[int]:
                return [i for i, r in enumerate(registries) if series(r, "durably_runs")]

            until(lambda: len(exporting()) == 1, "one process exports the runs")
            (holder,) = exporting()
            runs = series(registries[holder], "durably_runs")
            assert runs == {"queue=prom.idle,status=pending": 3}
            ages = series(registries[holder], "durably_oldest_due_run_age_seconds")
            assert list(ages) == ["queue=prom.idle"] and ages["queue=prom.idle"] >= 0
            other = 1 - holder
            assert series(registries[other], "durably_oldest_due_run_age_seconds") == {}
            # Closing the holder gives its lease back: the other process takes over.
            metrics[holder].close()
            until(lambda: series(registries[other], "durably_runs") == runs, "a takeover")
        finally:
            for m in metrics:
                m.close()


def test_a_worker_stopped_by_sigterm_gives_the_gauges_lease_back(tmp_path: Path) -> None:
    db = str(tmp_path / "gauges.db")
    client = durably.Engine(db, execute=False)
    client.start_workflow("gauges.elsewhere", 1)  # a pending run: the gauges have a row
    (tmp_path / "gauge_flows.py").write_text("import durably\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    worker = subprocess.Popen(
        [sys.executable, "-m", "durably.cli", "worker", "--store", db, "--app", "gauge_flows",
         "--metrics-port", str(port)],
        cwd=tmp_path, env=dict(os.environ, PYTHONPATH=SRC),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

    def exported() -> bool:  # the database gauges: the worker holds their lease
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                return 'durably_runs{queue="default",status="pending"}' in r.read().decode()
        except OSError:
            return False

    try:
        until(exported, "the worker's database gauges")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, worker.communicate()
        assert client.store.acquire_lock(LOCK, "the next worker", 30)  # at once, not at ttl
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.communicate()
        client.close()


def test_engines_share_one_registry(store_url: str) -> None:
    registry = CollectorRegistry()
    with (
        durably.Engine(store_url, poll_interval=0.05, shutdown_grace=2) as a,
        durably.Engine(store_url, poll_interval=0.05, shutdown_grace=2) as b,
    ):
        first_metrics = instrument(a, registry, gauge_interval=0.2)
        second_metrics = instrument(b, registry, gauge_interval=0.2)
        with pytest.raises(ValueError, match="already instrumented"):
            instrument(a, registry)
        assert a.start_workflow(ok, 5).result(timeout=15) == 7
        finished = "durably_runs_finished_total"
        until(lambda: series(registry, finished) != {}, "the run's end counted")
        assert series(registry, finished) == {"queue=default,status=completed,workflow=prom.ok": 1}
        first_metrics.close()
        assert series(registry, finished) != {}  # still in use by the other engine
        second_metrics.close()
        assert generate_latest(registry) == b""


def test_serve_answers_http(engine: durably.Engine) -> None:
    metrics = serve(engine, port=0, addr="127.0.0.1")
    try:
        assert engine.start_workflow(ok, 10).result(timeout=15) == 12
        url = f"http://127.0.0.1:{metrics.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            text = response.read().decode()
        names = {f.name for f in text_string_to_metric_families(text)}
        assert {"durably_worker_slots_in_use", "durably_step_attempts"} <= names
    finally:
        metrics.close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)


def test_without_the_extra_the_import_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "durably.contrib.prometheus")
    with pytest.raises(ImportError, match=re.escape("pip install 'durably[prometheus]'")):
        importlib.import_module("durably.contrib.prometheus")


def test_a_store_error_in_the_gauges_thread_is_logged_and_retried(
    engine: durably.Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    take = engine.store.acquire_lock
    calls: list[str] = []

    def flaky_lock(name: str, owner: str, ttl: float) -> bool:
        calls.append(name)
        if len(calls) == 1:
            raise OSError("the database is away")
        return take(name, owner, ttl)

    monkeypatch.setattr(engine.store, "acquire_lock", flaky_lock)
    engine.with_options(queue="prom.later", delay="1h").start_workflow(ok, 0)
    registry = CollectorRegistry()
    with (
        caplog.at_level("WARNING", logger="durably.metrics"),
        instrument(engine, registry, gauge_interval=0.2),
    ):
        until(lambda: series(registry, "durably_runs") != {}, "the gauges after the error")
        assert series(registry, "durably_runs") == {"queue=prom.later,status=pending": 1}
        # Not due: no run of the queue waits for a worker.
        ages = series(registry, "durably_oldest_due_run_age_seconds")
        assert ages == {"queue=prom.later": 0}
    (record,) = [r for r in caplog.records if r.name == "durably.metrics"]
    assert "the store failed" in record.getMessage()
    assert record.exc_info is not None and "the database is away" in str(record.exc_info[1])


def test_events_are_counted_without_a_scrape(engine: durably.Engine) -> None:
    registry = CollectorRegistry()
    with instrument(engine, registry) as metrics:
        engine.start_workflow(ok, 1).result(timeout=30)
        family = metrics._family
        # Nobody scrapes: the registry's own thread counts what was queued.
        until(lambda: bool(family.attempts.merged()), "the events counted", timeout=5)
        assert family.attempts.merged() == [(("prom.ok", add_one.name), [2.0])]


def test_the_counting_thread_outlives_an_event_it_cannot_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from durably.contrib.prometheus.family import Family

    family = Family(CollectorRegistry())
    try:
        family.run_started(object())  # type: ignore[arg-type]  # not an event
        until(lambda: "counting the events failed" in caplog.text, "the failure logged", 5)
        family.step_finished(StepFinished("r", "wf", "s", 0, 1, "completed", 0.001))
        until(lambda: bool(family.attempts.merged()), "the next events counted", 5)
    finally:
        family.stop()


def test_a_fold_counts_the_steps_of_one_name_and_of_several_alike() -> None:
    from durably.contrib.prometheus.family import Family

    family = Family(CollectorRegistry())
    family.stop()  # folded here only
    one = [StepFinished("r", "wf", "a", n, 1, "completed", n / 100) for n in range(3)]
    for event in one:
        family.step_finished(event)
    family.fold()
    mixed = [StepFinished("r", "wf", "b", 0, 1, "retrying", 2.0), *one[:2]]
    for event in mixed:
        family.step_finished(event)
    family.fold()
    assert family.attempts.merged() == [(("wf", "a"), [5.0]), (("wf", "b"), [1.0])]
    assert family.retries.merged() == [(("wf", "b"), [1.0])]
    seconds = dict(family.step_seconds.merged())
    # 0 s and 10 ms twice, 20 ms once: in the buckets of <= 1 ms, <= 10 ms, <= 25 ms
    assert seconds["wf", "a"][:4] == [2, 0, 2, 1] and sum(seconds["wf", "a"][:-1]) == 5
    assert seconds["wf", "a"][-1] == pytest.approx(0.04)
    assert sum(seconds["wf", "b"][:-1]) == 1 and seconds["wf", "b"][-1] == 2.0


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    from durably.contrib.prometheus.rows import Histograms

    histogram = Histograms("probe_seconds", "A probe.", "queue", (0.1, 1, 10))
    for value in (0.05, 0.1, 0.5, 1, 20):
        histogram.observe(("q",), value)
    (sample_family,) = text_string_to_metric_families(generate_latest_of(histogram.family()))
    values = {(s.name, s.labels.get("le")): s.value for s in sample_family.samples}
    assert values[("durably_probe_seconds_bucket", "0.1")] == 2  # le is inclusive
    assert values[("durably_probe_seconds_bucket", "1.0")] == 4
    assert values[("durably_probe_seconds_bucket", "10.0")] == 4
    assert values[("durably_probe_seconds_bucket", "+Inf")] == 5
    assert values[("durably_probe_seconds_count", None)] == 5
    assert values[("durably_probe_seconds_sum", None)] == pytest.approx(21.65)


def test_values_observed_in_bulk_land_as_one_by_one() -> None:
    from durably.contrib.prometheus.rows import Histograms

    values = [0.05, 0.1, 0.5, 1, 20, 3, 0.2]
    keys: list[tuple[str, ...]] = [("a",), ("b",), ("a",), ("a",), ("b",), ("c",), ("a",)]
    one, bulk = (Histograms("probe_seconds", "A probe.", "queue", (0.1, 1, 10)) for _ in "ab")
    for key, value in zip(keys, values, strict=True):
        one.observe(key, value)
    counts = bulk.observe_each(keys, values)
    assert bulk.merged() == one.merged()
    assert counts == {("a",): 4, ("b",): 2, ("c",): 1}
    bulk.observe_all(("a",), [30, 0.3, 0.1, 1, 10])  # one key for all, bounds included
    for value in (30, 0.3, 0.1, 1, 10):
        one.observe(("a",), value)
    assert bulk.merged() == one.merged()
    bulk.observe_all(("d",), [1, 1, 2, 500, 0])
    for value in (1, 1, 2, 500, 0):
        one.observe(("d",), value)
    assert bulk.merged() == one.merged()


def generate_latest_of(family: Any) -> str:
    """The exposition of one metric family alone."""

    class One:
        def collect(self) -> Any:
            return [family]

    registry = CollectorRegistry()
    registry.register(One())
    return generate_latest(registry).decode()


def test_events_from_many_threads_add_up_exactly() -> None:
    from durably.contrib.prometheus.family import Family

    family = Family(CollectorRegistry())
    event = StepFinished("r", "wf", "s", 0, 1, "completed", 0.001)
    retry = StepFinished("r", "wf", "t", 1, 1, "retrying", 0.5)

    def emit() -> None:
        for i in range(20_000):
            family.step_finished(event)
            if i % 100 == 0:
                family.step_finished(retry)
                family.batch_committed(BatchCommitted(3, 0.002))

    threads = [threading.Thread(target=emit) for _ in range(8)]
    for thread in threads:
        thread.start()
    scraped = []
    for _ in range(20):  # while they emit and fold: never an error
        scraped.append(family.attempts.merged())
        family.fold()
    for thread in threads:
        thread.join()
    family.collect()
    family.stop()
    assert family.attempts.merged() == [(("wf", "s"), [160_000.0]), (("wf", "t"), [1_600.0])]
    assert family.retries.merged() == [(("wf", "t"), [1_600.0])]
    assert all(total <= 160_000 for rows in scraped for _, (total,) in rows)
    durations = dict(family.step_seconds.merged())
    assert durations["wf", "s"][-1] == pytest.approx(160.0)  # the sum
    assert sum(durations["wf", "t"][:-1]) == 1_600  # the count, over the buckets
    ((_, sizes),) = family.batch_size.merged()
    assert sum(sizes[:-1]) == 1_600 and sizes[-1] == 4_800
