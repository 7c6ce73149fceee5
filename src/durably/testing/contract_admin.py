"""The contract of :class:`~durably.stores.base.AdminStore`: listings, history, forks,
locks and purges (part of :class:`durably.testing.contract.StoreContract`)."""

from __future__ import annotations

import threading

from durably.records import Lease, RunFilter, RunStatus
from durably.stores.base import Store, Transaction
from durably.testing.contract_base import ContractBase, entry, new

ENDED = {"completed": 1e12, "failed": 1e12, "cancelled": 1e12}  # every end is "old enough"


class AdminContract(ContractBase):
    """What operators ask of a store."""

    def ended(self, store: Store, run_id: str, status: RunStatus) -> Lease:
        lease = self.claimed(store, run_id)
        self.finish(store, lease, status)
        return lease

    def test_filters_select_runs(self, store: Store) -> None:
        before = store.now() - 1
        self.create(store, new("a1", workflow="billing.invoice"))
        self.create(store, new("a2", workflow="billing.refund", queue="slow"))
        self.create(store, new("b1", workflow="shipping.label", idempotency_key="k-1"))
        self.create(store, new("c1", workflow="shipping.label", parent_id="b1"))
        self.create(store, new("e1", workflow="Billing.Invoice"))  # case counts
        self.ended(store, "d1", RunStatus.FAILED)

        def ids(**given: object) -> list[str]:
            where = RunFilter(**given)  # type: ignore[arg-type]
            found = [r.run_id for r in store.list_runs(where, 100)]
            assert store.count_runs(where) == len(found)
            return sorted(found)

        assert ids(workflows=("billing.*",)) == ["a1", "a2"]
        assert ids(workflows=("shipping.label", "billing.ref?nd")) == ["a2", "b1", "c1"]
        assert ids(workflows=("billing_%",)) == []  # LIKE's own wildcards are literal
        assert ids(statuses=(RunStatus.FAILED,)) == ["d1"]
        assert ids(statuses=(RunStatus.PENDING,), queue="slow") == ["a2"]
        assert ids(parent_id="b1") == ["c1"]
        assert ids(idempotency_key="k-1") == ["b1"]
        assert ids(workflows=("Billing.*",)) == ["e1"]
        assert ids(since=before) == ["a1", "a2", "b1", "c1", "d1", "e1"]
        assert ids(until=before) == []

    def test_pages_follow_each_other_newest_first(self, store: Store) -> None:
        for i in range(25):
            self.create(store, new(f"r{i:02d}"))
        seen: list[str] = []
        after = None
        while True:
            page = store.list_runs(RunFilter(), 10, after)
            if not page:
                break
            seen += [r.run_id for r in page]
            after = (page[-1].created_at, page[-1].run_id)
        assert seen == [f"r{i:02d}" for i in reversed(range(25))]
        assert store.count_runs(RunFilter()) == 25

    def test_history_records_what_the_journal_does_not(self, store: Store) -> None:
        self.create(store, new("r1"))
        (claim,) = self.claim(store, "w1")
        self.write(store, lambda tx: store.suspend_run(tx, claim.lease, RunStatus.SLEEPING, 1.0))
        assert len(self.claim(store, "w2")) == 1
        assert store.release_owner("w2", dead=True) == 1
        assert len(self.claim(store, "w3")) == 1
        self.write(store, lambda tx: store.add_history(tx, "r1", "attempt failed", {"n": 1}))
        self.write(store, lambda tx: store.cancel_run(tx, "r1", "enough"))
        kinds = [(kind, detail) for _, kind, detail in store.history("r1")]
        assert [k for k, _ in kinds] == [
            "claimed",
            "suspended",
            "claimed",
            "released",
            "claimed",
            "attempt failed",
            "cancel requested",
        ]
        assert kinds[0][1]["worker"] == "w1" and "from" not in kinds[0][1]
        assert kinds[3][1] == {"reason": "its worker died", "worker": "w2"}
        assert kinds[4][1]["from"] == "w2"  # taken back from the dead worker
        assert kinds[6][1] == {"reason": "enough"}
        assert all(at > 0 for at, _, _ in store.history("r1"))
        assert store.history("nobody") == []

    def test_fork_copies_the_journal_up_to_a_position(self, store: Store) -> None:
        lease = self.claimed(store, "src")

        def journal(tx: Transaction) -> None:
            for seq in range(3):
                store.append_entry(tx, lease, entry(seq, f"s{seq}"))

        self.write(store, journal)
        fork = new("copy")
        row = self.write(store, lambda tx: store.fork_run(tx, "src", fork, 2))
        assert (row.run_id, row.status) == ("copy", RunStatus.PENDING)
        assert [e.name for e in store.journal("copy")] == ["s0", "s1"]
        assert [e.name for e in store.journal("src")] == ["s0", "s1", "s2"]
        # A page of a journal, and its length.
        assert [e.name for e in store.journal("src", 1)] == ["s1", "s2"]
        assert [e.name for e in store.journal("src", 1, 1)] == ["s1"]
        assert store.journal("src", 5, 10) == []
        assert (store.journal_size("src"), store.journal_size("copy")) == (3, 2)
        assert store.journal_size("nobody") == 0
        assert store.pending_signals("nobody") == []
        assert [k for _, k, _ in store.history("copy")] == ["forked"]

    def test_one_lock_holder_at_a_time(self, store: Store) -> None:
        assert store.acquire_lock("sweep", "a", 60)
        assert not store.acquire_lock("sweep", "b", 60)
        assert store.acquire_lock("sweep", "a", 60)  # a renewal
        store.release_lock("sweep", "b")  # not b's: nothing happens
        assert not store.acquire_lock("sweep", "b", 60)
        store.release_lock("sweep", "a")
        assert store.acquire_lock("sweep", "b", 0)  # held until now: expires at once
        assert store.acquire_lock("sweep", "c", 60)

    def test_purge_deletes_whole_ended_trees_and_nothing_else(self, store: Store) -> None:
        # An ended tree: a root, its child, a continue-as-new successor, with their data.
        root = self.claimed(store, "root")
        self.write(store, lambda tx: store.append_entry(tx, root, entry(0)))
        self.write(store, lambda tx: store.set_event(tx, root, entry(1, "progress"), "1"))
        self.create(store, new("child", parent_id="root", owner="a", lease=30.0))
        self.finish(store, Lease("child", "a", 1), RunStatus.FAILED)
        self.write(
            store,
            lambda tx: store.finish_run(tx, root, RunStatus.COMPLETED, None, None, "next"),
        )
        self.create(store, new("next", root_id="root", owner="a", lease=30.0))
        self.finish(store, Lease("next", "a", 1), RunStatus.COMPLETED)
        # A tree with one run still going, and a run sleeping for years: both stay.
        self.ended(store, "busy-root", RunStatus.COMPLETED)
        self.create(store, new("busy-child", parent_id="busy-root"))
        sleeper = self.claimed(store, "sleeper")
        self.write(store, lambda tx: store.suspend_run(tx, sleeper, RunStatus.SLEEPING, 1e11))
        # Cancelled runs are kept: their status has no cutoff here.
        self.ended(store, "kept", RunStatus.CANCELLED)
        cutoffs = {k: v for k, v in ENDED.items() if k != "cancelled"}
        assert store.purge(cutoffs, limit=100, dry_run=True) == 3
        assert store.get_run("root") is not None  # a dry run deletes nothing
        assert store.purge(cutoffs, limit=100) == 3
        assert store.purge(cutoffs, limit=100) == 0
        for gone in ("root", "child", "next"):
            assert store.get_run(gone) is None and store.journal(gone) == []
            assert store.history(gone) == []
        assert store.get_event("root", "progress") == (False, None)
        for kept in ("busy-root", "busy-child", "sleeper", "kept"):
            assert store.get_run(kept) is not None, kept
        store.vacuum()

    def test_a_live_tree_does_not_hold_back_the_trees_behind_it(self, store: Store) -> None:
        self.ended(store, "a-busy", RunStatus.COMPLETED)  # first in every scan
        self.create(store, new("a-busy-child", parent_id="a-busy"))
        for i in range(3):
            self.ended(store, f"b{i}", RunStatus.COMPLETED)
        assert [store.purge(ENDED, limit=1) for _ in range(4)] == [1, 1, 1, 0]
        assert store.get_run("a-busy") is not None

    def test_purges_at_once_delete_each_tree_once(self, store: Store) -> None:
        for i in range(40):
            self.ended(store, f"r{i}", RunStatus.COMPLETED)
        counts: list[int] = []

        def sweep() -> None:
            while n := store.purge(ENDED, limit=3):
                counts.append(n)

        threads = [threading.Thread(target=sweep) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sum(counts) == 40 and store.count_runs(RunFilter()) == 0

    def test_events_of_a_run_and_the_schema_version(self, store: Store) -> None:
        lease = self.claimed(store, "r1")
        self.write(store, lambda tx: store.set_event(tx, lease, entry(0, "b"), "2"))
        self.write(store, lambda tx: store.set_event(tx, lease, entry(1, "a"), "1"))
        assert [(k, v) for k, v, _ in store.events("r1")] == [("a", "1"), ("b", "2")]
        assert store.events("nobody") == []
        assert store.schema_version() >= 8

    def test_running_counts(self, store: Store) -> None:
        self.claimed(store, "r1", owner="w1")
        self.claimed(store, "r2", owner="w1")
        self.claimed(store, "r3", owner="w2")
        assert store.running_counts() == {"w1": 2, "w2": 1}
