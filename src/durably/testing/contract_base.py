"""Helpers of the Store contract (:mod:`durably.testing.contract`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import pytest

from durably.queues import Queue
from durably.records import Claim, EntryStatus, JournalEntry, Lease, NewRun, RunRow, RunStatus
from durably.stores.base import Store, Transaction

T = TypeVar("T")
WORKFLOW = "contract.wf"
LIMITED = Queue("durably.contract.concurrency", concurrency=2)
PARTITIONED = Queue("durably.contract.partitions", partition_concurrency=1)
RATED = Queue("durably.contract.rate", rate_limit=(2, "1h"))


def new(run_id: str, **fields: Any) -> NewRun:
    """A run to create, of the contract's workflow."""
    return NewRun(run_id=run_id, workflow=fields.pop("workflow", WORKFLOW), input="{}", **fields)


def entry(seq: int, name: str = "s", output: str | None = '"ok"') -> JournalEntry:
    return JournalEntry(seq, "step", name, EntryStatus.COMPLETED, output, None, 1, 1.0, 2.0, "")


class ContractBase:
    """The fixture a backend provides, and the helpers every contract test uses."""

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        raise NotImplementedError("give the subclass a `store` fixture yielding a fresh store")

    # -- helpers ------------------------------------------------------------------
    @staticmethod
    def write(store: Store, work: Callable[[Transaction], T]) -> T:
        return store.transact(work)

    def create(self, store: Store, run: NewRun) -> tuple[RunRow, bool]:
        return self.write(store, lambda tx: store.create_run(tx, run))

    def claim(
        self,
        store: Store,
        owner: str,
        limit: int = 10,
        queues: Sequence[str] | None = None,
        limits: Queue | None = None,
    ) -> list[Claim]:
        return self.write(
            store,
            lambda tx: store.claim_runs(tx, owner, limit, 30.0, [WORKFLOW], queues, (), limits),
        )

    def finish(self, store: Store, lease: Lease, status: RunStatus) -> None:
        self.write(store, lambda tx: store.finish_run(tx, lease, status, None, None))

    def signal(self, store: Store, run_id: str, payload: str, key: str) -> None:
        self.write(store, lambda tx: store.send_signal(tx, run_id, "go", payload, key))

    def take(self, store: Store, lease: Lease, seq: int, name: str) -> str | None:
        return self.write(store, lambda tx: store.take_signal(tx, lease, entry(seq, name, None)))

    def claimed(self, store: Store, run_id: str, owner: str = "a") -> Lease:
        """Create ``run_id`` already claimed by ``owner`` (the in-process fast path)."""
        row, created = self.create(store, new(run_id, owner=owner, lease=30.0))
        assert created and row.owner == owner and row.epoch == 1
        return Lease(run_id, owner, 1)
