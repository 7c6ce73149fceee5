"""durably.contrib.otel: a run's spans form one trace from its caller to its steps, across
processes, children and a worker killed mid-run, a late resumption starts a linked trace,
replay adds no span."""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, SpanKind, StatusCode

import durably
import durably.logs
from durably.contrib.otel import current_trace_ids, instrument
from durably.hooks import RunClaimed, RunLost
from durably.testing import TestEngine

WORKER = Path(__file__).parent / "data" / "otel_worker.py"
SRC = str(Path(durably.__file__).resolve().parent.parent)
SECRET = "card-4242-4242-secret"
SEEN: dict[str, tuple[str, str] | None] = {}


# -- workflows -----------------------------------------------------------------------
@durably.step
def reserve(item: str) -> str:
    ids = durably.logs.trace_ids  # what a log record of the body carries
    SEEN[item] = ids() if ids is not None else None
    return f"reserved-{item}"


@durably.step
def charge(item: str) -> str:
    return f"charged-{item}"


@durably.workflow(name="otel.order")
def order(item: str) -> list[str]:
    return [reserve(item), charge(item)]


@durably.workflow(name="otel.nap")
def nap(item: str) -> list[str]:
    first = reserve(item)
    durably.sleep("1.2s")  # over a second: the worker is freed, the run suspended
    return [first, charge(item)]


@durably.step
def lap(n: int) -> int:
    return n


@durably.workflow(name="otel.laps")
def laps() -> int:
    total = lap(1)
    for n in (2, 3, 4):  # each wake-up replays the journal recorded so far
        durably.sleep("1.1s")
        total += lap(n)
    return total


@durably.workflow(name="otel.kid")
def kid(item: str) -> str:
    return charge(item)


@durably.workflow(name="otel.parent")
def parent(item: str) -> str:
    return durably.start_child(kid, item).result()


@durably.step(retries=1, backoff=0.01)
def explode(card: str) -> None:
    raise ValueError("boom")


@durably.workflow(name="otel.broken")
def broken(card: str) -> None:
    explode(card)


@durably.step(timeout="10s")  # an async body with a timeout runs in a task of its own
async def pack(item: str) -> str:
    return f"packed-{item}"


@durably.workflow(name="otel.async")
async def shipping(item: str) -> list[str]:
    return [await pack(item), await pack(item + "-2")]


@durably.workflow(name="otel.fanout")
def fanout() -> list[int]:
    return durably.map(lap, [1, 2, 3])  # each branch on a thread of its own


@durably.workflow(name="otel.waiter")
def waiter() -> Any:
    return durably.wait_for_signal("go", timeout="30s")


@durably.step("otel.prepare")
def prepare(x: int) -> int:
    return x * 3


@durably.step("otel.finish")
def finish(x: int) -> int:
    return x + 1  # in data/otel_worker.py, where the first attempt hangs until killed


@durably.workflow(name="otel.recovered")
def recovered(x: int) -> int:
    return finish(prepare(x))


# -- helpers -------------------------------------------------------------------------
@contextmanager
def traced(
    store: str, *, virtual: bool = False, **options: Any
) -> Iterator[tuple[durably.Engine, InMemorySpanExporter, TracerProvider]]:
    """A launched engine, instrumented, with its spans kept in memory; ``virtual``: on a
    virtual clock (durably.testing), its sleeps skipped."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    kind = TestEngine if virtual else durably.Engine
    engine = kind(store, poll_interval=0.05, shutdown_grace=2)
    tracing = instrument(engine, provider, **options)
    with engine:
        yield engine, exporter, provider
        tracing.close()
    provider.shutdown()


def started_by_a_client(
    store: str, workflow: Any, arg: Any
) -> tuple[InMemorySpanExporter, Span, durably.RunHandle[Any]]:
    """A run started inside a span ``caller`` by a client that executes nothing, traced:
    its spans, the caller's span and the run's handle."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with durably.Engine(store, execute=False) as client:
        tracing = instrument(client, provider)
        with provider.get_tracer("test").start_as_current_span("caller") as caller:
            handle = client.start_workflow(workflow, arg)
        tracing.close()
    return exporter, caller, handle


def worker_env(**more: str) -> dict[str, str]:
    """The environment of data/otel_worker.py: durably importable, and ``more``."""
    path = os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path, **more)


def finished(exporter: InMemorySpanExporter, name: str, run_id: str) -> list[ReadableSpan]:
    return [
        s
        for s in exporter.get_finished_spans()
        if s.name == name and (s.attributes or {}).get("durably.run.id") == run_id
    ]


def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 15
    while not condition():
        assert time.monotonic() < deadline, "not within 15 s"
        time.sleep(0.02)


def ended(exporter: InMemorySpanExporter, workflow: str, run_id: str) -> list[ReadableSpan]:
    """The run's execution spans, once the last (the one its end was told to) ended."""

    def done() -> bool:
        spans = finished(exporter, f"run {workflow}", run_id)
        return any("durably.run.status" in (s.attributes or {}) for s in spans)

    until(done)
    return sorted(finished(exporter, f"run {workflow}", run_id), key=lambda s: s.start_time or 0)


def ids(span: ReadableSpan) -> tuple[int, int]:
    context = span.get_span_context()
    assert context is not None
    return context.trace_id, context.span_id


def parent_of(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


# -- tests ---------------------------------------------------------------------------
def test_a_run_is_one_trace_from_its_caller_to_its_steps(store_url: str) -> None:
    with traced(store_url) as (engine, exporter, provider):
        with provider.get_tracer("test").start_as_current_span("caller") as caller:
            handle = engine.start_workflow(order, "lamp")
        assert handle.result(timeout=15) == ["reserved-lamp", "charged-lamp"]
        (run,) = ended(exporter, "otel.order", handle.run_id)
        (start,) = finished(exporter, "start otel.order", handle.run_id)
        steps = {s.name: s for s in exporter.get_finished_spans() if s.name.startswith("step ")}

    trace_id = caller.get_span_context().trace_id
    assert start.kind is SpanKind.PRODUCER and run.kind is SpanKind.CONSUMER
    assert parent_of(start) == caller.get_span_context().span_id
    assert parent_of(run) == ids(start)[1]
    assert set(steps) == {"step reserve", "step charge"}
    for span in (start, run, *steps.values()):
        assert ids(span)[0] == trace_id
    for step in steps.values():
        assert parent_of(step) == ids(run)[1]
        assert step.attributes is not None
        assert step.attributes["durably.step.attempt"] == 1
        assert step.attributes["durably.run.id"] == handle.run_id
    assert steps["step reserve"].attributes is not None
    assert steps["step reserve"].attributes["durably.step.name"] == "reserve"
    # A log record made in the body carries the step span's ids.
    trace_hex, span_hex = f"{trace_id:032x}", f"{ids(steps['step reserve'])[1]:016x}"
    assert SEEN["lamp"] == (trace_hex, span_hex)
    attributes = run.attributes or {}
    assert attributes["durably.run.id"] == handle.run_id
    assert attributes["durably.workflow.name"] == "otel.order"
    assert attributes["durably.queue"] == "default"
    assert str(attributes["durably.worker.id"])
    assert attributes["durably.run.status"] == "completed"
    assert run.status.status_code is StatusCode.UNSET


def test_a_run_started_here_and_executed_by_a_worker_process_is_one_trace(
    tmp_path: Path,
) -> None:
    store = str(tmp_path / "durably.db")
    exporter, caller, handle = started_by_a_client(store, "otel.remote", 4)  # not imported here
    spans_file = tmp_path / "spans.jsonl"
    done = subprocess.run(
        [sys.executable, str(WORKER), store, handle.run_id, str(spans_file)],
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    remote = {s["name"]: s for s in map(json.loads, spans_file.read_text().splitlines())}
    (start,) = finished(exporter, "start otel.remote", handle.run_id)
    assert set(remote) == {"run otel.remote", "step remote_step"}
    trace_hex = f"{caller.get_span_context().trace_id:032x}"
    assert {s["trace_id"] for s in remote.values()} == {trace_hex}
    assert remote["run otel.remote"]["parent_id"] == f"{ids(start)[1]:016x}"
    assert remote["run otel.remote"]["kind"] == "CONSUMER"
    run_span_hex = remote["run otel.remote"]["span_id"]
    assert remote["step remote_step"]["parent_id"] == run_span_hex


def test_a_run_recovered_from_a_killed_worker_stays_in_its_trace(
    store_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exporter, caller, handle = started_by_a_client(store_url, recovered, 4)
    (start,) = finished(exporter, "start otel.recovered", handle.run_id)
    spans_file, stalled = tmp_path / "spans.jsonl", tmp_path / "stalled"
    command = [sys.executable, str(WORKER), store_url, handle.run_id, str(spans_file), "2"]
    env = worker_env(OTEL_TEST_STALL=str(stalled))
    doomed = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    try:
        until(lambda: stalled.exists() or doomed.poll() is not None)
        assert stalled.exists(), doomed.communicate()[1]
    finally:
        doomed.kill()  # SIGKILL, in the second step: its lease held by a dead process
        doomed.communicate()
    caplog.set_level(logging.INFO, logger="durably.worker")
    with traced(store_url) as (engine, survivor, _):
        assert engine.handle(handle.run_id).result(timeout=30) == 13
        (run,) = ended(survivor, "otel.recovered", handle.run_id)
        steps = [s for s in survivor.get_finished_spans() if s.name.startswith("step ")]

    trace_id = caller.get_span_context().trace_id
    killed = [json.loads(line) for line in spans_file.read_text().splitlines()]
    # The dead worker's run span and its hung step never ended; its first step did.
    assert [(s["name"], s["trace_id"]) for s in killed] == [
        ("step otel.prepare", f"{trace_id:032x}")
    ]
    assert ids(run)[0] == trace_id and parent_of(run) == ids(start)[1]
    assert (run.attributes or {})["durably.run.recovered"] is True
    assert [s.name for s in steps] == ["step otel.finish"]  # the first one replayed
    assert parent_of(steps[0]) == ids(run)[1]
    (line,) = [r for r in caplog.records if "recovered from a worker" in r.getMessage()]
    assert getattr(line, "run_id", None) == handle.run_id


def test_a_resumption_long_after_the_start_is_a_new_trace_linked_to_it(tmp_path: Path) -> None:
    with traced(str(tmp_path / "d.db"), virtual=True, new_trace_after="0.2s") as (
        engine,
        exporter,
        _,
    ):
        handle = engine.start_workflow(nap, "desk")
        assert handle.result(timeout=15) == ["reserved-desk", "charged-desk"]
        first, second = ended(exporter, "otel.nap", handle.run_id)
        (start,) = finished(exporter, "start otel.nap", handle.run_id)
        spans = {s.name: s for s in exporter.get_finished_spans() if s.name.startswith("step ")}

    assert parent_of(first) == ids(start)[1] and ids(first)[0] == ids(start)[0]
    assert [e.name for e in first.events] == ["sleeping"]
    assert "durably.wake_at" in (first.events[0].attributes or {})
    # The wake-up replays the journal well after the start: a trace of its own...
    assert second.parent is None and ids(second)[0] != ids(start)[0]
    (link,) = second.links
    assert (link.context.trace_id, link.context.span_id) == ids(start)  # ...linked to it
    assert ids(spans["step reserve"])[0] == ids(start)[0]
    assert ids(spans["step charge"])[0] == ids(second)[0]
    assert parent_of(spans["step charge"]) == ids(second)[1]


def test_replayed_steps_have_no_spans(tmp_path: Path) -> None:
    with traced(str(tmp_path / "d.db"), virtual=True) as (engine, exporter, _):
        handle = engine.start_workflow(laps)
        assert handle.result(timeout=30) == 10
        runs = ended(exporter, "otel.laps", handle.run_id)
        steps = finished(exporter, "step lap", handle.run_id)

    assert len(runs) == 4  # a start and three wake-ups, each replaying the journal
    assert [(s.attributes or {})["durably.run.replaying"] for s in runs] == [
        False,
        True,
        True,
        True,
    ]
    assert len({ids(s)[0] for s in runs}) == 1  # soon after the start: the same trace
    assert len(steps) == 4  # one span per body that ran, none for the replays
    assert {parent_of(s) for s in steps} == {ids(r)[1] for r in runs}


def test_steps_of_async_runs_and_of_parallel_branches_nest_under_the_run(
    tmp_path: Path,
) -> None:
    with traced(str(tmp_path / "d.db")) as (engine, exporter, _):
        shipped = engine.start_workflow(shipping, "box")
        assert shipped.result(timeout=15) == ["packed-box", "packed-box-2"]
        fanned = engine.start_workflow(fanout)
        assert fanned.result(timeout=15) == [1, 2, 3]
        runs = [
            (
                ended(exporter, "otel.async", shipped.run_id),
                finished(exporter, "step pack", shipped.run_id),
                2,
            ),
            (
                ended(exporter, "otel.fanout", fanned.run_id),
                finished(exporter, "step lap", fanned.run_id),
                3,
            ),
        ]
    for (run,), steps, count in runs:
        assert len(steps) == count
        assert {(ids(s)[0], parent_of(s)) for s in steps} == {ids(run)}


def test_a_childs_spans_are_in_its_parents_trace(store_url: str) -> None:
    with traced(store_url) as (engine, exporter, _):
        handle = engine.start_workflow(parent, "vase")
        assert handle.result(timeout=15) == "charged-vase"
        parent_runs = ended(exporter, "otel.parent", handle.run_id)
        (child_start,) = [s for s in exporter.get_finished_spans() if s.name == "start otel.kid"]
        child_id = str((child_start.attributes or {})["durably.run.id"])
        child_runs = ended(exporter, "otel.kid", child_id)
        (step,) = finished(exporter, "step charge", child_id)

    trace_id = ids(parent_runs[0])[0]
    for span in (*parent_runs, child_start, *child_runs, step):
        assert ids(span)[0] == trace_id
    assert parent_of(child_start) == ids(parent_runs[0])[1]  # started in the parent's code
    assert (child_start.attributes or {})["durably.parent_run.id"] == handle.run_id
    assert (child_start.attributes or {})["durably.run.origin"] == "child"
    (child_run,) = child_runs
    assert parent_of(child_run) == ids(child_start)[1]
    assert (child_run.attributes or {})["durably.parent_run.id"] == handle.run_id
    assert parent_of(step) == ids(child_run)[1]


def test_a_failed_run_and_its_steps_are_errors_without_payloads(tmp_path: Path) -> None:
    with traced(str(tmp_path / "d.db")) as (engine, exporter, _):
        handle = engine.start_workflow(broken, SECRET)
        with pytest.raises(durably.WorkflowFailed):
            handle.result(timeout=15)
        (run,) = ended(exporter, "otel.broken", handle.run_id)
        attempts = sorted(
            finished(exporter, "step explode", handle.run_id),
            key=lambda s: int(str((s.attributes or {})["durably.step.attempt"])),
        )
        everything = exporter.get_finished_spans()

    assert run.status.status_code is StatusCode.ERROR
    assert "boom" in (run.status.description or "")
    (exception,) = [e for e in run.events if e.name == "exception"]
    assert "boom" in str((exception.attributes or {})["exception.message"])
    (retry,) = [e for e in run.events if e.name == "retry"]
    assert dict(retry.attributes or {}) == {
        "durably.step.name": "explode",
        "durably.step.attempt": 1,
        "exception.type": "ValueError",
    }
    assert [(s.attributes or {})["durably.step.attempt"] for s in attempts] == [1, 2]
    for step in attempts:
        assert step.status.status_code is StatusCode.ERROR
        (recorded,) = [e for e in step.events if e.name == "exception"]
        assert (recorded.attributes or {})["exception.type"] == "ValueError"
    for span in everything:  # neither input nor output became an attribute
        values = [str(v) for v in (span.attributes or {}).values()]
        values += [str(v) for e in span.events for v in (e.attributes or {}).values()]
        assert not any(SECRET in v for v in values), span.name


def test_a_signal_is_a_span_in_the_senders_trace(tmp_path: Path) -> None:
    with traced(str(tmp_path / "d.db")) as (engine, exporter, provider):
        handle = engine.start_workflow(waiter)
        until(lambda: engine.get_run(handle.run_id).status is durably.RunStatus.WAITING)
        with provider.get_tracer("test").start_as_current_span("sender") as sender:
            engine.send_signal(handle.run_id, "go", {"card": SECRET})
        assert handle.result(timeout=15) == {"card": SECRET}
        waiting, woken = ended(exporter, "otel.waiter", handle.run_id)
        (signal,) = finished(exporter, "signal go", handle.run_id)

    assert signal.kind is SpanKind.PRODUCER
    assert parent_of(signal) == sender.get_span_context().span_id
    assert [e.name for e in waiting.events] == ["waiting"]
    assert ids(waiting)[0] == ids(woken)[0]
    assert not any(SECRET in str(v) for v in (signal.attributes or {}).values())


def test_a_schedules_tick_starts_a_trace_of_its_own(tmp_path: Path) -> None:
    with traced(str(tmp_path / "d.db")) as (engine, exporter, provider):
        engine.schedules.create("otel.hourly", order, args=["clock"], every="1h")
        with provider.get_tracer("test").start_as_current_span("operator"):
            handle = engine.schedules.trigger("otel.hourly")
        handle.result(timeout=15)
        (run,) = ended(exporter, "otel.order", handle.run_id)
        (start,) = finished(exporter, "start otel.order", handle.run_id)

    assert start.parent is None  # not the operator's: every tick is a trace of its own
    attributes = start.attributes or {}
    assert (attributes["durably.schedule.id"], attributes["durably.run.origin"]) == (
        "otel.hourly",
        "schedule",
    )
    assert parent_of(run) == ids(start)[1]


def test_an_execution_that_raises_ends_its_span_as_an_error(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with durably.Engine(str(tmp_path / "d.db"), execute=False) as engine:
        tracing = instrument(engine, provider)
        claimed = RunClaimed("r-1", "otel.scope", "default", "w-1", 1, False, trace="{not json")
        with pytest.raises(RuntimeError), tracing.run_executing(claimed):
            raise RuntimeError("the engine failed")
        tracing.run_lost(RunLost("r-1", "otel.scope", 2))  # nothing open any more: no effect
        tracing.close()
    (span,) = exporter.get_finished_spans()
    assert span.parent is None and not span.links  # an unreadable carrier: a trace of its own
    assert span.status.status_code is StatusCode.ERROR
    assert [e.name for e in span.events] == ["exception"]


def test_close_unsubscribes_and_restores_log_correlation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def before() -> tuple[str, str] | None:
        return None

    monkeypatch.setattr(durably.logs, "trace_ids", before)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with durably.Engine(str(tmp_path / "d.db"), execute=False) as engine:
        tracing = instrument(engine, provider)
        assert durably.logs.trace_ids is current_trace_ids
        with provider.get_tracer("test").start_as_current_span("here") as here:
            context = here.get_span_context()
            assert current_trace_ids() == (f"{context.trace_id:032x}", f"{context.span_id:016x}")
        assert current_trace_ids() is None
        tracing.close()
        assert durably.logs.trace_ids is before
        engine.start_workflow(order, "after")
    assert [s.name for s in exporter.get_finished_spans()] == ["here"]


def test_without_opentelemetry_the_import_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.delitem(sys.modules, "durably.contrib.otel")
    with pytest.raises(ImportError, match=r"pip install 'durably\[otel\]'"):
        importlib.import_module("durably.contrib.otel")


def test_an_engine_is_traced_once_at_a_time() -> None:
    engine = durably.Engine(":memory:", execute=False)
    try:
        provider = TracerProvider()
        first = instrument(engine, provider)
        with pytest.raises(ValueError, match="traced already"):
            instrument(engine, provider)  # two run spans per execution, two per step
        first.close()
        instrument(engine, provider).close()  # once closed, again
    finally:
        engine.close()
