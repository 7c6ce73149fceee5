"""The engine contract: starting, waiting, reading, retrying — on every backend."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

import durably
from durably import RunStatus
from durably.testing import TestEngine

CALLS: list[str] = []
GATE = threading.Event()


@durably.step
def add(x: int, y: int) -> int:
    CALLS.append(f"add({x},{y})")
    return x + y


@durably.workflow(name="t.sum")
def sum_three(a: int, b: int, c: int = 0) -> int:
    return add(add(a, b), c)


@durably.step
async def slow_double(x: int) -> int:
    await asyncio.sleep(0.01)
    return 2 * x


@durably.workflow(name="t.async_pair")
async def async_pair(x: int) -> list[int]:
    return list(await asyncio.gather(slow_double(x), slow_double(x + 1)))


def test_sync_workflow_runs_and_journals(engine: durably.Engine) -> None:
    handle = engine.start_workflow(sum_three, 1, 2, c=3)
    assert handle.result(timeout=10) == 6
    run = engine.get_run(handle.run_id)
    assert run.status is RunStatus.COMPLETED
    assert run.workflow == "t.sum"
    assert run.input == {"args": [1, 2], "kwargs": {"c": 3}}
    assert run.output == 6
    assert run.current_step is None
    steps = engine.steps(handle.run_id)
    assert [(s.seq, s.name, s.status, s.output) for s in steps] == [
        (0, "add", "completed", 3),
        (1, "add", "completed", 6),
    ]
    assert all(s.attempts == 1 and s.started_at and s.finished_at for s in steps)
    assert "test_engine.py" in steps[0].call_site


def test_async_workflow_gather_is_deterministic(engine: durably.Engine) -> None:
    handle = engine.start_workflow(async_pair, 5)
    assert handle.result(timeout=10) == [10, 12]
    assert [s.output for s in engine.steps(handle.run_id)] == [10, 12]


def test_async_twins(engine: durably.Engine) -> None:
    async def main() -> int:
        handle = await engine.start_workflow_async(sum_three, 2, 2)
        result: int = await handle.result_async(timeout=10)
        assert await handle.status_async() is RunStatus.COMPLETED
        run = await engine.get_run_async(handle.run_id)
        assert (run.workflow, run.output) == ("t.sum", 4)
        assert len(await engine.steps_async(handle.run_id)) == 2
        assert [r.run_id for r in await engine.list_runs_async(workflow="t.sum")] == [handle.run_id]
        return result

    assert asyncio.run(main()) == 4


def test_start_by_name(engine: durably.Engine) -> None:
    assert engine.start_workflow("t.sum", 4, 5).result(timeout=10) == 9


def test_unknown_name_is_rejected_at_once(engine: durably.Engine) -> None:
    with pytest.raises(durably.WorkflowNotFound, match=r"no\.such\.workflow"):
        engine.start_workflow("no.such.workflow")
    assert engine.list_runs() == []


def test_same_run_id_or_key_never_runs_twice(engine: durably.Engine) -> None:
    CALLS.clear()
    first = engine.with_options(run_id="fixed-id").start_workflow(sum_three, 10, 20)
    again = engine.with_options(run_id="fixed-id").start_workflow(sum_three, 10, 20)
    assert again.run_id == first.run_id == "fixed-id"
    assert again.result(timeout=10) == 30
    keyed = engine.with_options(idempotency_key="order-7").start_workflow(sum_three, 1, 1)
    rekeyed = engine.with_options(idempotency_key="order-7").start_workflow(sum_three, 1, 1)
    assert keyed.run_id == rekeyed.run_id
    assert rekeyed.result(timeout=10) == 2
    assert len(engine.list_runs(workflow="t.sum")) == 2
    assert CALLS.count("add(10,20)") == 1


def test_list_runs_filters(engine: durably.Engine) -> None:
    done = [engine.start_workflow(sum_three, i, i) for i in range(3)]
    for handle in done:
        handle.result(timeout=10)
    assert len(engine.list_runs(workflow="t.sum", status="completed")) == 3
    assert engine.list_runs(status=RunStatus.FAILED) == []
    assert len(engine.list_runs(limit=2)) == 2


def test_unknown_run(engine: durably.Engine) -> None:
    with pytest.raises(durably.RunNotFound):
        engine.get_run("nope")
    with pytest.raises(durably.RunNotFound):
        engine.steps("nope")
    with pytest.raises(durably.RunNotFound):
        engine.retry("nope")


# -- failures and retries -------------------------------------------------------------
ATTEMPTS: dict[str, int] = {}
BROKEN = {"ship": True}


@durably.step(retries=2, backoff=0)
def flaky(key: str) -> str:
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if ATTEMPTS[key] < 3:
        raise ConnectionError(f"attempt {ATTEMPTS[key]} failed")
    return f"ok after {ATTEMPTS[key]}"


@durably.step(retries=5, backoff=0)
def fatal() -> None:
    ATTEMPTS["fatal"] = ATTEMPTS.get("fatal", 0) + 1
    raise durably.FatalError("card declined")


@durably.step(retries=0)
def ship(order: str) -> str:
    ATTEMPTS["ship"] = ATTEMPTS.get("ship", 0) + 1
    if BROKEN["ship"]:
        raise RuntimeError("warehouse offline")
    return f"shipped {order}"


@durably.workflow(name="t.flaky")
def flaky_wf(key: str) -> str:
    return flaky(key)


@durably.workflow(name="t.fatal")
def fatal_wf() -> str:
    try:
        fatal()
    except durably.StepFailed as exc:
        return f"caught {exc.error_type}: {exc.error_message}"
    return "unreachable"


@durably.workflow(name="t.order")
def order_wf(order: str) -> str:
    total = add(1, 2)
    return f"{ship(order)} for {total}"


def test_retries_until_success(engine: durably.Engine) -> None:
    handle = engine.start_workflow(flaky_wf, f"k-{time.monotonic_ns()}")
    assert handle.result(timeout=10) == "ok after 3"
    (entry,) = engine.steps(handle.run_id)
    assert entry.attempts == 3


def test_fatal_error_is_never_retried(engine: durably.Engine) -> None:
    ATTEMPTS.pop("fatal", None)
    handle = engine.start_workflow(fatal_wf)
    assert handle.result(timeout=10) == "caught FatalError: card declined"
    assert ATTEMPTS["fatal"] == 1


def test_failed_run_reports_error_and_retry_resumes(engine: durably.Engine) -> None:
    BROKEN["ship"] = True
    ATTEMPTS.pop("ship", None)
    CALLS.clear()
    handle = engine.start_workflow(order_wf, "o-1")
    with pytest.raises(durably.WorkflowFailed) as info:
        handle.result(timeout=10)
    assert info.value.error_type == "StepFailed"
    assert "warehouse offline" in info.value.error_message
    assert 'raise RuntimeError("warehouse offline")' in info.value.remote_traceback
    assert os.path.dirname(durably.__file__) not in info.value.remote_traceback  # theirs only
    run = engine.get_run(handle.run_id)
    assert run.status is RunStatus.FAILED and run.error is not None
    assert [s.status for s in engine.steps(handle.run_id)] == ["completed", "failed"]

    BROKEN["ship"] = False
    assert engine.retry(handle.run_id).result(timeout=10) == "shipped o-1 for 3"
    assert CALLS == ["add(1,2)"]  # the completed step was answered from the journal
    assert ATTEMPTS["ship"] == 2
    with pytest.raises(durably.InvalidRunState, match="only failed runs"):
        engine.retry(handle.run_id)


@durably.step(retries=0)
def always_fails() -> int:
    raise ValueError("bad value")


@durably.workflow(name="t.replayed_failure")
def replayed_failure() -> str:
    try:
        always_fails()
    except durably.StepFailed as exc:
        seen = f"{type(exc).__name__}/{exc.error_type}/{exc.error_message}"
    add(0, 0)
    BROKEN_AFTER["n"] += 1
    if BROKEN_AFTER["n"] == 1:
        raise RuntimeError("fail once after the caught step failure")
    return seen


BROKEN_AFTER = {"n": 0}


def test_step_failed_is_the_same_on_replay(engine: durably.Engine) -> None:
    BROKEN_AFTER["n"] = 0
    handle = engine.start_workflow(replayed_failure)
    with pytest.raises(durably.WorkflowFailed):
        handle.result(timeout=10)
    # The workflow itself failed (no failed step at the end), so retry replays all steps.
    assert engine.retry(handle.run_id).result(timeout=10) == "StepFailed/ValueError/bad value"


@durably.step(retries=1, backoff="fixed")
def retry_later() -> str:
    ATTEMPTS["later"] = ATTEMPTS.get("later", 0) + 1
    if ATTEMPTS["later"] == 1:
        raise durably.RetryableError("rate limited", retry_after=1.5)
    return "done"


@durably.workflow(name="t.retry_later")
def retry_later_wf() -> str:
    return retry_later()


def test_long_retry_delay_frees_the_worker(store_url: str) -> None:
    ATTEMPTS.pop("later", None)
    engine = TestEngine(store_url, auto_skip=False)  # the retry waits for the test's clock
    try:
        handle = engine.start_workflow(retry_later_wf)
        engine.run_until_idle()
        run = engine.get_run(handle.run_id)
        assert run.status is RunStatus.PENDING and run.attempts == 1, "released while it waits"
        assert engine.steps(handle.run_id)[0].status == "retrying"
        engine.clock.advance(1.4)
        engine.run_until_idle()
        assert engine.get_run(handle.run_id).status is RunStatus.PENDING  # not yet due
        engine.clock.advance(0.1)
        assert handle.result(timeout=10) == "done"
        assert engine.get_run(handle.run_id).attempts == 2
        assert engine.steps(handle.run_id)[0].attempts == 2
    finally:
        engine.close()


# -- timeouts and progress ------------------------------------------------------------
@durably.step(timeout=0.2, timeout_grace=0.05, retries=0)
def hangs() -> None:
    time.sleep(2)


@durably.step(timeout="200ms", timeout_grace=0.05, retries=0)
async def hangs_async() -> None:
    await asyncio.sleep(2)


@durably.workflow(name="t.timeout")
def timeout_wf() -> str:
    try:
        hangs()
    except durably.StepFailed as exc:
        return exc.error_type
    return "no timeout"


@durably.workflow(name="t.timeout_async")
async def timeout_async_wf() -> str:
    try:
        await hangs_async()
    except durably.StepFailed as exc:
        return exc.error_type
    return "no timeout"


def test_step_timeouts(engine: durably.Engine) -> None:
    sync_handle = engine.start_workflow(timeout_wf)
    async_handle = engine.start_workflow(timeout_async_wf)
    # The bodies would run 2 s and return: only the timeouts make these StepTimeout.
    assert sync_handle.result(timeout=10) == "StepTimeout"
    assert async_handle.result(timeout=10) == "StepTimeout"


@durably.step
def blocks_on_gate() -> str:
    GATE.wait(10)
    return "passed"


@durably.workflow(name="t.gated")
def gated() -> str:
    add(0, 1)
    return blocks_on_gate()


def test_current_step_names_the_running_step(engine: durably.Engine, store_url: str) -> None:
    GATE.clear()
    handle = engine.start_workflow(gated)
    observer = durably.Engine(store_url)  # another engine sees the published progress
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if observer.get_run(handle.run_id).current_step == "blocks_on_gate":
                break
            time.sleep(0.05)
        assert observer.get_run(handle.run_id).current_step == "blocks_on_gate"
        assert observer.get_run(handle.run_id).status is RunStatus.RUNNING
    finally:
        GATE.set()
        observer.close()
    assert handle.result(timeout=10) == "passed"
    assert engine.get_run(handle.run_id).current_step is None


def test_many_concurrent_runs(engine: durably.Engine) -> None:
    handles: list[durably.RunHandle[Any]] = [
        engine.start_workflow(sum_three, i, 1, c=1) for i in range(200)
    ]
    handles += [engine.start_workflow(async_pair, i) for i in range(50)]
    results = [h.result(timeout=30) for h in handles]
    assert results[:200] == [i + 2 for i in range(200)]
    assert results[200:] == [[2 * i, 2 * i + 2] for i in range(50)]


# -- serialization --------------------------------------------------------------------
@dataclass(frozen=True)
class Receipt:
    order: str
    amount: Decimal
    at: datetime
    tags: tuple[str, ...]


@durably.step
def make_receipt(order: str) -> Receipt:
    return Receipt(order, Decimal("19.99"), datetime(2026, 1, 2, 3, 4, 5), ("a", "b"))


@durably.workflow(name="t.receipt")
def receipt_wf(order: str) -> Receipt:
    receipt = make_receipt(order)
    assert isinstance(receipt, Receipt) and isinstance(receipt.amount, Decimal)
    return receipt


@durably.step
def unserializable() -> object:
    return object()


@durably.workflow(name="t.bad_result")
def bad_result_wf() -> str:
    try:
        unserializable()
    except durably.StepFailed as exc:
        return exc.error_message
    return "no error"


@durably.workflow(name="t.echo")
def echo(payload: str) -> str:
    return payload


def test_types_are_restored_from_annotations(engine: durably.Engine) -> None:
    result = engine.start_workflow(receipt_wf, "o-9").result(timeout=10)
    assert result == Receipt("o-9", Decimal("19.99"), datetime(2026, 1, 2, 3, 4, 5), ("a", "b"))


def test_unserializable_argument_writes_nothing(engine: durably.Engine) -> None:
    with pytest.raises(durably.SerializationError, match="input of workflow"):
        engine.start_workflow(echo, object())  # type: ignore[call-overload]
    assert engine.list_runs() == []


def test_unserializable_result_fails_the_step(engine: durably.Engine) -> None:
    message = engine.start_workflow(bad_result_wf).result(timeout=10)
    assert "result of step 'unserializable'" in message and "object" in message


def test_payload_limit(store_url: str) -> None:
    with durably.Engine(store_url, max_payload=1000) as small:
        with pytest.raises(durably.SerializationError, match="bytes, over the 1,000-byte"):
            small.start_workflow(echo, "x" * 2000)
        assert small.start_workflow(echo, "x" * 100).result(timeout=10) == "x" * 100


def test_restarting_a_running_or_finishing_run_never_executes_it_again(
    engine: durably.Engine,
) -> None:
    CALLS.clear()
    ids = [f"again-{time.monotonic_ns()}-{i}" for i in range(40)]
    for i, run_id in enumerate(ids):
        engine.with_options(run_id=run_id).start_workflow(sum_three, 1000 + i, 1)
        for _ in range(3):  # while it runs, as it finishes, after it finished
            engine.with_options(run_id=run_id).start_workflow(sum_three, 1000 + i, 1)
    for run_id in ids:
        engine.handle(run_id).result(timeout=10)
    for i in range(40):
        assert CALLS.count(f"add({1000 + i},1)") == 1


def test_a_result_completed_here_is_returned_without_a_read(
    engine: durably.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, chained = engine.start_workflow(sum_three, 1, 2, 3), engine.start_workflow(async_pair, 5)
    assert first.result(timeout=10) == 6
    assert chained.result(timeout=10) == [10, 12]

    def no_reads(run_id: str) -> None:
        raise AssertionError(f"read run {run_id} from the database")

    monkeypatch.setattr(engine.store, "get_run", no_reads)
    assert first.result(timeout=1) == 6
    assert asyncio.run(chained.result_async(timeout=1)) == [10, 12]


def test_waiting_for_a_run_executing_here_polls_nothing(
    engine: durably.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    GATE.clear()
    handle = engine.start_workflow(gated)
    reads: list[str] = []
    real_get_run = engine.store.get_run

    def counted(run_id: str) -> durably.records.RunRow | None:
        reads.append(run_id)
        return real_get_run(run_id)

    monkeypatch.setattr(engine.store, "get_run", counted)
    threading.Timer(0.4, GATE.set).start()  # polling every 5-40 ms would read ~6 times
    assert handle.result(timeout=10) == "passed"
    assert reads == []

    GATE.clear()
    handle = engine.start_workflow(gated)
    threading.Timer(0.4, GATE.set).start()
    assert asyncio.run(handle.result_async(timeout=10)) == "passed"
    assert reads == []


def test_async_with_and_async_twins_that_hold_no_thread(store_url: str) -> None:
    async def main() -> list[object]:
        async with durably.Engine(store_url, poll_interval=0.05) as engine:
            handle = await engine.start_workflow_async(sum_three, 1, 2)
            await handle.result_async(timeout=10)
            waiting = [
                engine.get_event_async(handle.run_id, "nothing", timeout=0.3) for _ in range(40)
            ]
            # 40 waits at once in a default pool of a few threads: they wait in the loop.
            return list(await asyncio.gather(*waiting))

    assert asyncio.run(main()) == [None] * 40
