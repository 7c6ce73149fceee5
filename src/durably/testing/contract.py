"""The Store contract as tests: what every backend must do, called on the Store directly.

A backend passes it by subclassing :class:`StoreContract` in a test module and
giving it a ``store`` fixture that yields a fresh, empty store (pytest collects
the inherited tests)::

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            store = MyStore(...)
            yield store
            store.close()

durably runs it on SQLite and PostgreSQL (``tests/stores``). It needs pytest.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from durably.errors import InvalidRunState, LeaseLost, RunNotFound
from durably.records import EntryStatus, JournalEntry, Lease, RunFilter, RunStatus
from durably.stores.base import Store, Transaction
from durably.testing.contract_admin import AdminContract
from durably.testing.contract_base import LIMITED, PARTITIONED, RATED, WORKFLOW, entry, new
from durably.testing.contract_schedules import ScheduleContract


class StoreContract(AdminContract, ScheduleContract):
    """The Store protocol's promises (see :mod:`durably.stores.base`), one test each."""

    # -- creating runs ----------------------------------------------------------------
    def test_the_same_run_id_twice_makes_one_run(self, store: Store) -> None:
        _, created = self.create(store, new("r1"))
        again, created_again = self.create(store, new("r1", queue="other"))
        assert created and not created_again
        assert again.run_id == "r1" and again.queue == "default"
        assert [r.run_id for r in store.list_runs(RunFilter(), 10)] == ["r1"]

    def test_the_idempotency_key_finds_the_first_run_whatever_the_id(self, store: Store) -> None:
        self.create(store, new("r1", idempotency_key="k"))
        row, created = self.create(store, new("r2", idempotency_key="k"))
        assert not created and row.run_id == "r1"
        assert store.get_run("r2") is None

    def test_concurrent_creates_of_one_id_make_one_run(self, store: Store) -> None:
        outcomes: list[bool] = []
        barrier = threading.Barrier(6)

        def start() -> None:
            barrier.wait()
            outcomes.append(self.create(store, new("same", idempotency_key="same"))[1])

        threads = [threading.Thread(target=start) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(outcomes) == [False] * 5 + [True]

    # -- claiming -------------------------------------------------------------------------
    def test_claims_take_the_highest_priority_then_the_earliest_due(self, store: Store) -> None:
        self.create(store, new("low", priority=0))
        self.create(store, new("high", priority=5))
        self.create(store, new("later", priority=9, delay=3600))  # not due yet
        order = [c.run.run_id for _ in range(3) for c in self.claim(store, "w", limit=1)]
        assert order == ["high", "low"]

    def test_a_claim_leases_the_run_and_bumps_its_epoch(self, store: Store) -> None:
        self.create(store, new("r1"))
        (claim,) = self.claim(store, "w1")
        assert (claim.run.owner, claim.run.epoch, claim.run.status) == ("w1", 1, RunStatus.RUNNING)
        assert claim.run.attempts == 1 and claim.journal == ()
        assert self.claim(store, "w2") == []  # its lease is live

    def test_a_claim_loads_the_whole_journal(self, store: Store) -> None:
        lease = self.claimed(store, "r1")
        self.write(store, lambda tx: store.append_entry(tx, lease, entry(0, "a")))
        self.write(store, lambda tx: store.append_entry(tx, lease, entry(1, "b")))
        store.release_run(lease)
        (claim,) = self.claim(store, "w2")
        assert [(e.seq, e.name) for e in claim.journal] == [(0, "a"), (1, "b")]

    # -- fencing -----------------------------------------------------------------------------
    @pytest.mark.parametrize("successor", ["b", "a"])  # a peer, or the same worker again
    def test_every_write_is_fenced_by_the_epoch(self, store: Store, successor: str) -> None:
        stale = self.claimed(store, "r1", owner="a")
        assert store.release_owner("a") == 1  # as a peer does for a dead worker
        (claim,) = self.claim(store, successor)
        assert claim.run.epoch > stale.epoch
        self.write(store, lambda tx: store.send_signal(tx, "r1", "go", '"x"', "k1"))
        writes: list[Callable[[Transaction], Any]] = [
            lambda tx: store.append_entry(tx, stale, entry(0)),
            lambda tx: store.set_progress(tx, stale, "step"),
            lambda tx: store.suspend_run(tx, stale, RunStatus.SLEEPING, None),
            lambda tx: store.finish_run(tx, stale, RunStatus.COMPLETED, '"late"', None),
            lambda tx: store.take_signal(tx, stale, entry(0, "go", None)),
            lambda tx: store.set_event(tx, stale, entry(0, "progress"), '"50%"'),
        ]
        for work in writes:
            with pytest.raises(LeaseLost):
                self.write(store, work)
        row = store.get_run("r1")
        assert row is not None
        assert (row.status, row.owner, row.output) == (RunStatus.RUNNING, successor, None)
        assert store.journal("r1") == [] and store.get_event("r1", "progress") == (False, None)
        assert [(n, p) for n, p, _ in store.pending_signals("r1")] == [("go", '"x"')]
        taken = self.write(store, lambda tx: store.take_signal(tx, claim.lease, entry(0, "go")))
        assert taken == '"x"'  # the stale take consumed nothing
        assert store.pending_signals("r1") == []

    def test_a_finished_run_takes_no_more_writes(self, store: Store) -> None:
        lease = self.claimed(store, "r1")
        self.write(
            store, lambda tx: store.finish_run(tx, lease, RunStatus.COMPLETED, '"done"', None)
        )
        with pytest.raises(LeaseLost):
            self.write(store, lambda tx: store.append_entry(tx, lease, entry(0)))
        row = store.get_run("r1")
        assert row is not None and row.status is RunStatus.COMPLETED and row.output == '"done"'

    def test_a_refused_write_rolls_back_its_whole_transaction(self, store: Store) -> None:
        stale = Lease("ghost", "a", 7)

        def work(tx: Transaction) -> None:
            store.create_run(tx, new("written-first"))
            store.append_entry(tx, stale, entry(0))  # fenced out: raises

        with pytest.raises(LeaseLost):
            self.write(store, work)
        assert store.get_run("written-first") is None

    # -- queue limits ---------------------------------------------------------------------
    def test_queue_concurrency_holds(self, store: Store) -> None:
        for i in range(5):
            self.create(store, new(f"q{i}", queue=LIMITED.name))
        first = self.claim(store, "w1", queues=[LIMITED.name], limits=LIMITED)
        assert len(first) == 2
        assert self.claim(store, "w2", queues=[LIMITED.name], limits=LIMITED) == []
        done = first[0].lease
        self.write(store, lambda tx: store.finish_run(tx, done, RunStatus.COMPLETED, "1", None))
        assert len(self.claim(store, "w2", queues=[LIMITED.name], limits=LIMITED)) == 1

    def test_partition_concurrency_holds(self, store: Store) -> None:
        for i in range(3):
            self.create(store, new(f"a{i}", queue=PARTITIONED.name, partition_key="a"))
        self.create(store, new("b0", queue=PARTITIONED.name, partition_key="b"))
        claims = self.claim(store, "w1", queues=[PARTITIONED.name], limits=PARTITIONED)
        assert sorted(c.run.partition_key or "" for c in claims) == ["a", "b"]
        assert self.claim(store, "w2", queues=[PARTITIONED.name], limits=PARTITIONED) == []

    def test_rate_limit_holds(self, store: Store) -> None:
        for i in range(3):
            self.create(store, new(f"r{i}", queue=RATED.name))
        claims = self.claim(store, "w1", queues=[RATED.name], limits=RATED)
        assert len(claims) == 2
        for claim in claims:  # ending them frees no start within the period
            self.finish(store, claim.lease, RunStatus.FAILED)
        assert self.claim(store, "w2", queues=[RATED.name], limits=RATED) == []

    # -- signals and events ---------------------------------------------------------------
    def test_each_signal_is_received_once_in_order(self, store: Store) -> None:
        lease = self.claimed(store, "r1")
        for key, payload in (("k1", '"a"'), ("k2", '"b"'), ("k1", '"a-again"')):
            self.signal(store, "r1", payload, key)
        take = store.take_signal
        assert self.write(store, lambda tx: take(tx, lease, entry(0, "go", None))) == '"a"'
        # A retried transaction of the same position receives the same signal again.
        assert self.write(store, lambda tx: take(tx, lease, entry(0, "go", None))) == '"a"'
        assert self.write(store, lambda tx: take(tx, lease, entry(1, "go", None))) == '"b"'
        assert self.write(store, lambda tx: take(tx, lease, entry(2, "go", None))) is None
        assert [(e.seq, e.output) for e in store.journal("r1")] == [(0, '"a"'), (1, '"b"')]

    def test_a_signal_key_is_one_signal_per_run_and_name(self, store: Store) -> None:
        leases = [self.claimed(store, run_id) for run_id in ("r1", "r2")]
        for run_id in ("r1", "r2", "r1"):
            self.signal(store, run_id, f'"{run_id}"', "same-key")
        self.write(store, lambda tx: store.send_signal(tx, "r1", "other", '"o"', "same-key"))
        for lease in leases:
            assert self.take(store, lease, 0, "go") == f'"{lease.run_id}"'
            assert self.take(store, lease, 1, "go") is None
        assert self.take(store, leases[0], 2, "other") == '"o"'

    def test_signals_go_only_to_runs_that_exist_and_have_not_ended(self, store: Store) -> None:
        with pytest.raises(RunNotFound):
            self.write(store, lambda tx: store.send_signal(tx, "nobody", "go", "1", "k"))
        lease = self.claimed(store, "r1")
        self.write(store, lambda tx: store.finish_run(tx, lease, RunStatus.COMPLETED, "1", None))
        with pytest.raises(InvalidRunState):
            self.write(store, lambda tx: store.send_signal(tx, "r1", "go", "1", "k"))

    def test_a_signal_wakes_a_waiting_run(self, store: Store) -> None:
        lease = self.claimed(store, "r1")
        self.write(store, lambda tx: store.suspend_run(tx, lease, RunStatus.WAITING, None))
        assert self.claim(store, "w") == []  # parked until woken
        self.write(store, lambda tx: store.send_signal(tx, "r1", "go", "1", "k"))
        assert [c.run.run_id for c in self.claim(store, "w")] == ["r1"]

    def test_events_are_published_with_their_journal_entry(self, store: Store) -> None:
        lease = self.claimed(store, "r1")
        self.write(store, lambda tx: store.set_event(tx, lease, entry(0, "progress"), '"50%"'))
        assert store.get_event("r1", "progress") == (True, '"50%"')
        assert store.get_event("r1", "other") == (False, None)
        assert [e.name for e in store.journal("r1")] == ["progress"]

    # -- cancelling, retrying, chains -------------------------------------------------------
    def test_a_cancel_reaches_every_descendant(self, store: Store) -> None:
        parent = self.claimed(store, "p", owner="w")
        self.create(store, new("c", parent_id="p"))
        self.create(store, new("gc", parent_id="c"))
        assert self.write(store, lambda tx: store.cancel_run(tx, "p", "stop")) is True
        for run_id in ("p", "c", "gc"):
            row = store.get_run(run_id)
            assert row is not None and row.cancel_requested, run_id
        assert store.cancel_requests("w") == {parent.run_id: "stop"}

    def test_a_failed_run_is_retried_without_its_failed_entry(self, store: Store) -> None:
        lease = self.claimed(store, "r1")
        failed = JournalEntry(1, "step", "b", EntryStatus.FAILED, None, None, 3, 1.0, 2.0, "")
        self.write(store, lambda tx: store.append_entry(tx, lease, entry(0, "a")))
        self.write(store, lambda tx: store.append_entry(tx, lease, failed))
        with pytest.raises(InvalidRunState):
            self.write(store, lambda tx: store.retry_run(tx, "r1", [1]))  # still running
        self.write(store, lambda tx: store.finish_run(tx, lease, RunStatus.FAILED, None, None))
        self.write(store, lambda tx: store.retry_run(tx, "r1", [1]))
        assert [e.name for e in store.journal("r1")] == ["a"]
        assert [c.run.run_id for c in self.claim(store, "w2")] == ["r1"]

    def test_last_links_follow_continue_as_new_chains(self, store: Store) -> None:
        lease = self.claimed(store, "r1")

        def continue_run(tx: Transaction) -> None:
            store.finish_run(tx, lease, RunStatus.COMPLETED, None, None, "r2")
            store.create_run(tx, new("r2"))

        self.write(store, continue_run)
        self.write(store, lambda tx: store.create_run(tx, new("r3")))
        links = self.write(store, lambda tx: store.last_links(tx, ["r1", "r3", "nobody"]))
        assert {start: row.run_id for start, row in links.items()} == {"r1": "r2", "r3": "r3"}

    # -- leases and reads ----------------------------------------------------------------------
    def test_renewals_and_releases_count_what_the_owner_holds(self, store: Store) -> None:
        self.claimed(store, "r1", owner="w")
        self.claimed(store, "r2", owner="w")
        assert store.renew_leases("w", 30.0, ["r1", "r2", "not-held"]) == 2
        assert sorted(store.lease_owners()) == ["w"]
        assert store.release_owner("w") == 2
        assert store.lease_owners() == []
        assert {c.run.run_id for c in self.claim(store, "w2")} == {"r1", "r2"}

    def test_due_runs_are_those_a_claim_would_take(self, store: Store) -> None:
        self.create(store, new("first"))
        self.create(store, new("later", delay=3600))
        self.claimed(store, "held")
        self.create(store, new("second", queue="other", priority=5))
        due = store.due_runs(10)
        assert [(d.run_id, d.queue, d.priority) for d in due] == [
            ("first", "default", 0),
            ("second", "other", 5),
        ]
        assert all(d.workflow == WORKFLOW and d.available_at <= store.now() for d in due)
        assert [d.run_id for d in store.due_runs(1)] == ["first"]
        self.claim(store, "w", queues=["default"])
        assert [d.run_id for d in store.due_runs(10)] == ["second"]

    def test_reads(self, store: Store) -> None:
        assert store.get_run("nobody") is None and store.journal("nobody") == []
        self.create(store, new("first"))
        self.create(store, new("second", workflow="contract.other", delay=3600))

        def ids(where: RunFilter, limit: int) -> list[str]:
            return [r.run_id for r in store.list_runs(where, limit)]

        assert ids(RunFilter(), 10) == ["second", "first"]
        assert ids(RunFilter(workflows=("contract.other",)), 10) == ["second"]
        assert ids(RunFilter(statuses=(RunStatus.PENDING,)), 1) == ["second"]
        assert ids(RunFilter(statuses=(RunStatus.FAILED,)), 10) == []
        due = store.next_wakeup(["contract.other"])
        assert due is not None and due > store.now() + 3000
        assert abs(store.now() - store.clock.time()) < 600  # the same clock, or one near it
