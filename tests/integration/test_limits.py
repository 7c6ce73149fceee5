"""Names, payloads and numbers out of bounds are the caller's error, the same on both
backends, raised at the call before anything is written."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import durably
from durably.records import EntryStatus, JournalEntry, Lease, NewRun
from tests import postgres


@durably.workflow(name="lim.echo")
def echo(value: object) -> object:
    return value


@durably.workflow(name="lim.signals")
def wait_named(name: str) -> object:
    return durably.wait_for_signal(name, timeout="1s")


@durably.workflow(name="lim.events")
def publish(key: str) -> None:
    durably.set_event(key, 1)


@durably.workflow(name="lim.patch")
def patch(change: str) -> bool:
    return durably.patched(change)


@pytest.mark.parametrize(
    "bad",
    ["a\x00b", "", "   ", "x" * 201, "\ud800"],
    ids=["nul", "empty", "blank", "long", "surrogate"],
)
def test_bad_names_are_value_errors_at_the_call(engine: durably.Engine, bad: str) -> None:
    calls: list[Callable[[], Any]] = [
        lambda: engine.with_options(run_id=bad),
        lambda: engine.with_options(idempotency_key=bad),
        lambda: engine.with_options(queue=bad),
        lambda: engine.with_options(partition_key=bad),
        lambda: durably.workflow(name=bad),
        lambda: durably.step(name=bad),
        lambda: durably.Queue(bad),
        lambda: engine.get_event("r", bad),
    ]
    for call in calls:
        with pytest.raises(ValueError):
            call()
    run = engine.start_workflow(echo, 1)
    run.result(timeout=10)
    with pytest.raises(ValueError, match="signal name"):
        engine.send_signal(run.run_id, bad, 1)
    for wf in (wait_named, publish, patch):
        with pytest.raises(durably.WorkflowFailed, match="ValueError"):
            engine.start_workflow(wf, bad).result(timeout=10)


def test_postgres_data_errors_are_not_outages() -> None:
    """A value PostgreSQL refuses is a ValueError at once, never retried as an outage."""
    from durably.stores.postgres import PostgresStore

    postgres.require()
    name = postgres.new_schema("lim")
    store = PostgresStore(postgres.URL, schema=name, retry_for=60)
    try:
        store.transact(lambda tx: store.create_run(tx, NewRun("r", "w", "{}", owner="a", lease=30)))
        bad = JournalEntry(0, "event", "a\x00b", EntryStatus.COMPLETED, "1", None, 1, 1.0, 1.0, "")
        with pytest.raises(ValueError, match="NUL"):
            store.transact(lambda tx: store.set_event(tx, Lease("r", "a", 1), bad, "1"))
    finally:
        store.close()
        postgres.drop_schema(name)


@durably.step
def big_step(size: int) -> str:
    return "x" * size


@durably.workflow(name="lim.big_step")
def big_in_step(size: int) -> str:
    return big_step(size)


@durably.workflow(name="lim.big_result")
def big_result(size: int) -> str:
    return "y" * size


@durably.workflow(name="lim.big_event")
def big_event(size: int) -> None:
    durably.set_event("e", "z" * size)


@durably.workflow(name="lim.big_child")
def big_child(size: int) -> object:
    return durably.start_child(echo, "c" * size).result()


@durably.workflow(name="lim.big_successor")
def big_successor(size: int, tail: str = "") -> int:
    if tail:
        return len(tail)
    durably.continue_as_new(0, "s" * size)


@durably.workflow(name="lim.bad_successor")
def bad_successor() -> None:
    durably.continue_as_new(1, 2, 3)  # big_successor takes one argument


def test_one_payload_limit_everywhere(store_url: str) -> None:
    with durably.Engine(store_url, poll_interval=0.05, max_payload=1000) as engine:
        with pytest.raises(durably.SerializationError, match="1,000-byte"):
            engine.start_workflow(echo, "a" * 2000)
        for wf in (big_in_step, big_result, big_event, big_child, big_successor):
            assert engine.start_workflow(wf, 10).result(timeout=10) is not Ellipsis
            with pytest.raises(durably.WorkflowFailed, match="1,000-byte payload limit"):
                engine.start_workflow(wf, 2000).result(timeout=10)
    with pytest.raises(ValueError, match="max_payload"):
        durably.Engine(store_url, max_payload=0)


def test_arguments_of_a_successor_are_checked(engine: durably.Engine) -> None:
    with pytest.raises(durably.WorkflowFailed, match="TypeError"):
        engine.start_workflow(bad_successor).result(timeout=10)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"delay": 10**400}, "duration"),
        ({"delay": 1e300}, "hundred years"),
        ({"priority": 2**63}, "priority"),
        ({"priority": 2**31}, "priority"),
        ({"priority": -(2**31) - 1}, "priority"),
    ],
)
def test_start_options_out_of_range(
    engine: durably.Engine, options: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        engine.with_options(**options)
    assert engine.list_runs() == []


def test_extreme_priorities_that_fit_work(engine: durably.Engine) -> None:
    for priority in (2**31 - 1, -(2**31)):
        handle = engine.with_options(priority=priority).start_workflow(echo, priority)
        assert handle.result(timeout=10) == priority


def test_queue_limits_out_of_range() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        durably.Queue("lim.q", concurrency=2**40)
