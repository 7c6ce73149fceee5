"""Group commit: concurrent writes share transactions, each keeps its own outcome."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

import durably
from durably.committer import Committer
from durably.errors import LeaseLost, StoreClosed
from durably.runtime.effects import Plan, Write
from durably.stores.sql.statements import execute
from durably.stores.sqlite import SQLiteStore

T = TypeVar("T")


class CountingStore(SQLiteStore):
    """A SQLite store that counts its transactions."""

    transactions = 0

    def transact(self, work: Callable[[Any], T]) -> T:
        self.transactions += 1
        return super().transact(work)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CountingStore]:
    store = CountingStore(str(tmp_path / "c.db"))
    store.transact(lambda tx: tx.execute("CREATE TABLE t (v INTEGER)"))
    store.transactions = 0
    yield store
    store.close()


def insert(value: int) -> Callable[[Any], int]:
    def op(tx: Any) -> int:
        tx.execute("INSERT INTO t (v) VALUES (?)", (value,))
        return value

    return op


def refused(tx: Any) -> None:
    tx.execute("INSERT INTO t (v) VALUES (-1)")
    raise LeaseLost("fenced out")


def values(store: SQLiteStore) -> list[int]:
    rows = store.transact(lambda tx: execute(tx, "SELECT v FROM t").fetchall())
    return sorted(v for (v,) in rows)


def test_concurrent_sync_writers_share_transactions(store: CountingStore) -> None:
    committer = Committer(store)
    committer.concurrency = lambda: 8
    results: list[int] = []
    barrier = threading.Barrier(8)

    def writer(base: int) -> None:
        barrier.wait()
        for i in range(25):
            results.append(committer.run(insert(base + i)))

    threads = [threading.Thread(target=writer, args=(n * 100,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    committer.close()
    expected = sorted(n * 100 + i for n in range(8) for i in range(25))
    assert store.transactions < 200  # 200 writes, fewer commits
    assert sorted(results) == values(store) == expected


def test_one_refused_write_does_not_fail_its_batch(store: CountingStore) -> None:
    committer = Committer(store)
    ok = committer.submit(insert(1))
    bad = committer.submit(refused)
    also_ok = committer.submit(insert(2))
    assert ok.result(5) == 1 and also_ok.result(5) == 2
    with pytest.raises(LeaseLost):
        bad.result(5)
    committer.close()
    assert values(store) == [1, 2]  # the refused write's statement was not kept


def test_coroutines_on_the_engine_loop_commit_together(store: CountingStore) -> None:
    committer = Committer(store)
    loop = asyncio.new_event_loop()
    committer.loop = loop

    async def main() -> list[Any]:
        writes = [committer.run_async(insert(i)) for i in range(50)]
        return await asyncio.gather(*writes, committer.run_async(refused), return_exceptions=True)

    outcome = loop.run_until_complete(main())
    loop.close()
    committer.close()
    # One turn of the loop, one batch: tried once, rolled back for the refused write,
    # and committed without it.
    assert store.transactions == 2
    assert outcome[:50] == list(range(50))
    assert isinstance(outcome[50], LeaseLost)
    assert values(store) == list(range(50))


def test_coroutines_on_another_loop_go_through_the_writer(store: CountingStore) -> None:
    committer = Committer(store)
    committer.loop = asyncio.new_event_loop()  # the engine's loop, not the one running here

    async def main() -> list[int]:
        return list(await asyncio.gather(*(committer.run_async(insert(i)) for i in range(20))))

    assert asyncio.run(main()) == list(range(20))
    committer.close()
    committer.loop.close()
    assert values(store) == list(range(20))


def test_a_closed_committer_refuses_writes(store: CountingStore) -> None:
    committer = Committer(store)
    committer.close()
    with pytest.raises(StoreClosed):
        committer.run(insert(1))
    with pytest.raises(StoreClosed):
        committer.submit(insert(1))


def test_write_then_leaves_the_commit_to_a_thread_already_writing(
    store: CountingStore,
) -> None:
    committer = Committer(store)
    inside, release = threading.Event(), threading.Event()

    def slow(tx: Any) -> None:
        inside.set()
        assert release.wait(10)

    leader = threading.Thread(target=committer.run, args=(slow,))
    leader.start()
    assert inside.wait(10)
    outcomes: list[tuple[bool, object]] = []
    committer.write_then(insert(7), lambda ok, value: outcomes.append((ok, value)))
    assert outcomes == []  # returned at once: the writing thread commits it next
    release.set()
    leader.join(timeout=10)
    assert outcomes == [(True, 7)] and values(store) == [7]
    committer.write_then(insert(8), lambda ok, value: outcomes.append((ok, value)))
    assert outcomes[-1] == (True, 8)  # nobody else writing: committed on this thread
    committer.close()


def test_a_failing_completion_callback_costs_its_batch_nothing(store: CountingStore) -> None:
    committer = Committer(store)
    outcomes: list[tuple[bool, object]] = []

    def broken(ok: bool, value: object) -> None:
        raise RuntimeError("a callback bug")

    committer.concurrency = lambda: 2  # the first writer lingers: both share its batch
    second = threading.Thread(
        target=lambda: committer.write_then(insert(2), lambda ok, v: outcomes.append((ok, v)))
    )
    committer.queue(insert(1), broken)
    second.start()
    second.join(timeout=10)
    deadline = time.monotonic() + 10
    while not outcomes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert outcomes == [(True, 2)] and values(store) == [1, 2]
    committer.close()


@durably.step
async def start_from_step(tag: str) -> str:
    engine = ENGINES[0]
    # A blocking start from a coroutine on the engine's own loop must not wait on it.
    return engine.start_workflow(leaf, tag).run_id


@durably.workflow(name="committer.leaf")
async def leaf(tag: str) -> str:
    await asyncio.sleep(0)
    return f"leaf {tag}"


@durably.workflow(name="committer.starter")
async def starter(tag: str) -> str:
    return await start_from_step(tag)


ENGINES: list[durably.Engine] = []


def test_async_runs_started_from_many_threads_and_from_the_loop(tmp_path: Path) -> None:
    with durably.Engine(str(tmp_path / "e.db")) as engine:
        ENGINES[:] = [engine]
        handles: list[durably.RunHandle[str]] = []

        def start(n: int) -> None:
            for i in range(20):
                handles.append(engine.start_workflow(leaf, f"{n}-{i}"))

        threads = [threading.Thread(target=start, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(h.result(timeout=30) for h in handles) == sorted(
            f"leaf {n}-{i}" for n in range(4) for i in range(20)
        )
        child = engine.start_workflow(starter, "x").result(timeout=30)
        assert engine.handle(child).result(timeout=30) == "leaf x"


def test_async_runs_started_from_another_event_loop(tmp_path: Path) -> None:
    with durably.Engine(str(tmp_path / "e.db")) as engine:

        async def main() -> list[str]:
            handles = await asyncio.gather(
                *(engine.start_workflow_async(leaf, str(i)) for i in range(30))
            )
            return list(await asyncio.gather(*(h.result_async(timeout=30) for h in handles)))

        assert asyncio.run(main()) == [f"leaf {i}" for i in range(30)]


def test_a_start_handed_to_the_loop_is_answered_when_the_engine_shuts_down(
    tmp_path: Path,
) -> None:
    engine = durably.Engine(str(tmp_path / "e.db")).launch()
    executor = engine._executor
    assert executor is not None
    gate = threading.Event()
    executor.inbox.post(gate.wait, 30)  # the loop is busy: the start waits behind it
    outcomes: list[tuple[bool, object]] = []

    def plan() -> Plan[str]:
        yield Write(lambda tx: None)
        return "started"

    executor.start_on_loop(plan(), lambda ok, value: outcomes.append((ok, value)))
    stopper = threading.Thread(target=engine.shutdown)
    stopper.start()
    deadline = time.monotonic() + 10
    while not outcomes and time.monotonic() < deadline:
        time.sleep(0.01)
    gate.set()
    stopper.join(timeout=10)
    # Its caller is told, instead of waiting forever; the loop never ran the plan.
    assert len(outcomes) == 1
    ok, error = outcomes[0]
    assert not ok and isinstance(error, StoreClosed)
