"""Retention: the fleet's one sweeper deletes whole ended trees past their age, and
never a run that has not ended, however old; on each backend."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

import durably
from durably.records import RunStatus
from durably.stores.base import Store
from durably.stores.sql.statements import execute
from durably.stores.sql.store import SqlStore

YEAR = 365 * 86400.0


@durably.workflow(name="ret.kid")
def kid(n: int) -> int:
    return n


@durably.workflow(name="ret.parent")
def parent() -> int:
    return durably.start_child(kid, 1).result() + durably.start_child(kid, 2).result()


@durably.workflow(name="ret.sleeper")
def sleeper() -> str:
    durably.sleep("400d")
    return "awake"


@durably.workflow(name="ret.fails")
def fails() -> None:
    raise ValueError("no")


def age_everything(store: Store, seconds: float) -> None:
    """Move every run's times back: as if they had been started and ended that long ago."""
    assert isinstance(store, SqlStore)
    sql = store.inline("UPDATE runs SET created_at = created_at - ?, updated_at = updated_at - ?")
    store.transact(lambda tx: execute(tx, sql, (seconds, seconds)))


def wait_for(predicate: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def gone(engine: durably.Engine, run_id: str) -> bool:
    try:
        engine.get_run(run_id)
    except durably.RunNotFound:
        return True
    return False


def test_the_sweeper_deletes_ended_trees_whole_and_never_a_live_run(store_url: str) -> None:
    with durably.Engine(store_url, poll_interval=0.05) as client:
        tree = client.start_workflow(parent)
        assert tree.result(timeout=20) == 3
        kids = [r.run_id for r in client.list_runs(parent=tree.run_id)]
        assert len(kids) == 2
        failed = client.start_workflow(fails)
        with pytest.raises(durably.WorkflowFailed):
            failed.result(timeout=10)
        asleep = client.start_workflow(sleeper)
        wait_for(lambda: client.get_run(asleep.run_id).status is RunStatus.SLEEPING)
        age_everything(client.store, YEAR)
    retention = durably.Retention(completed="30d", failed=timedelta(days=400), every=0.2)
    with durably.Engine(store_url, poll_interval=0.05, retention=retention) as engine:
        wait_for(lambda: gone(engine, tree.run_id))
        assert all(gone(engine, k) for k in kids)  # the tree went whole
        assert engine.steps(asleep.run_id)  # a year-old sleeping run stays, journal and all
        assert engine.get_run(asleep.run_id).status is RunStatus.SLEEPING
        assert engine.get_run(failed.run_id).status is RunStatus.FAILED  # not 400 days old
        assert engine.count_runs() == 2


def test_two_sweepers_take_turns_and_delete_each_run_once(store_url: str) -> None:
    with durably.Engine(store_url, poll_interval=0.05) as client:
        handles = [client.start_workflow(kid, i) for i in range(60)]
        for handle in handles:
            handle.result(timeout=20)
        age_everything(client.store, YEAR)
    retention = durably.Retention(completed="1d", every=0.2, batch=7)
    first = durably.Engine(store_url, poll_interval=0.05, retention=retention).launch()
    second = durably.Engine(store_url, poll_interval=0.05, retention=retention).launch()
    try:
        sweepers = [e.executor.sweeper for e in (first, second) if e.executor]
        wait_for(lambda: sum(s.deleted for s in sweepers if s is not None) >= 60)
        time.sleep(0.5)  # a few more looks: nothing is deleted twice
        assert first.count_runs() == 0
        deleted = sorted(s.deleted for s in sweepers if s is not None)
        assert deleted == [0, 60]  # one holds the fleet's lease; the other waits its turn
    finally:
        first.close()
        second.close()


def test_a_stopping_sweeper_hands_over_at_once(store_url: str) -> None:
    retention = durably.Retention(completed="1d", every=0.2)
    with durably.Engine(store_url, poll_interval=0.05, retention=retention) as engine:
        time.sleep(1.5)  # its first look takes the fleet's lease
        assert not engine.store.acquire_lock("durably.retention", "someone-else", 10)
    with durably.Engine(store_url, execute=False) as client:  # released as it stopped
        assert client.store.acquire_lock("durably.retention", "someone-else", 10)


def test_bad_retention_is_refused() -> None:
    with pytest.raises(ValueError, match="every must be a positive duration"):
        durably.Retention(every=0)
    with pytest.raises(ValueError, match="batch must be a positive int"):
        durably.Retention(batch=0)
    with pytest.raises(ValueError):
        durably.Retention(completed="soon")
    with pytest.raises(TypeError, match="retention must be a durably"):
        durably.Engine(":memory:", retention="30d")  # type: ignore[arg-type]
