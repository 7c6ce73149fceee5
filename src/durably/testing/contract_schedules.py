"""The contract of :class:`~durably.stores.base.ScheduleStore`: schedule rows, the due
ones held by one transaction at a time, and the ticks they fired (part of
:class:`durably.testing.contract.StoreContract`)."""

from __future__ import annotations

import threading
from dataclasses import replace

from durably.records import RunFilter
from durably.schedules import ScheduleSpec
from durably.stores.base import Store, Transaction
from durably.testing.contract_base import WORKFLOW, ContractBase, new
from durably.ticking import ScheduleState


def spec(schedule_id: str) -> ScheduleSpec:
    return ScheduleSpec(id=schedule_id, workflow=WORKFLOW, every=60.0)


def due(at: float = 1.0) -> ScheduleState:
    """A state due long ago (store time ``at``): every transaction sees it due."""
    return ScheduleState(next_at=at, due_at=at)


class ScheduleContract(ContractBase):
    """Schedules, as the workers that fire them need them."""

    def make(self, store: Store, schedule_id: str, state: ScheduleState) -> None:
        def insert(tx: Transaction) -> bool:
            return store.insert_schedule(tx, spec(schedule_id), state)

        assert self.write(store, insert)

    def test_a_schedule_is_made_once_and_kept_whole(self, store: Store) -> None:
        state = replace(due(), buffer=(1.0, 2.5), started=3, note="n", last_run="r9")
        assert self.write(store, lambda tx: store.insert_schedule(tx, spec("s"), state))
        assert not self.write(store, lambda tx: store.insert_schedule(tx, spec("s"), due(5)))
        [row] = store.schedules(["s"])
        assert row.spec == spec("s") and row.state == state
        assert store.schedules(["nope"]) == [] and len(store.schedules()) == 1

    def test_due_schedules_are_paused_or_not_and_in_order(self, store: Store) -> None:
        later = ScheduleState(next_at=4e12, due_at=4e12)
        paused = replace(due(0.5), paused=True)
        for sid, state in [("b", due(2)), ("a", due(1)), ("later", later), ("paused", paused)]:
            self.make(store, sid, state)
        found = self.write(store, lambda tx: store.due_schedules(tx, 10))
        assert [r.spec.id for r in found] == ["a", "b"]
        assert store.next_schedule_due() == 1.0

    def test_one_transaction_decides_a_due_schedule(self, store: Store) -> None:
        """Racing transactions never both get the same due schedule to decide."""
        for i in range(20):
            self.make(store, f"s{i}", due())
        decided: list[str] = []
        barrier = threading.Barrier(4)

        def fire(tx: Transaction) -> list[str]:
            rows = store.due_schedules(tx, 5)
            states = [(r.spec.id, replace(r.state, due_at=4e12, started=1)) for r in rows]
            store.save_states(tx, states)
            return [r.spec.id for r in rows]

        def worker() -> None:
            barrier.wait()
            while ids := self.write(store, fire):
                decided.extend(ids)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(decided) == sorted(f"s{i}" for i in range(20))
        assert {(r.spec, r.state.started) for r in store.schedules()} == {
            (spec(f"s{i}"), 1) for i in range(20)
        }

    def test_ticks_name_their_runs(self, store: Store) -> None:
        self.write(store, lambda tx: store.insert_schedule(tx, spec("s"), due()))

        def fire(tx: Transaction, run_id: str, nominal: float) -> None:
            store.create_runs(tx, [new(run_id), new(run_id)])  # created once
            store.add_ticks(tx, [(run_id, "s", nominal, "tick")] * 2)  # recorded once

        self.write(store, lambda tx: fire(tx, "s@1", 60.0))
        self.write(store, lambda tx: fire(tx, "s@2", 120.0))
        assert [t.run_id for t in store.ticks("s", 10)] == ["s@2", "s@1"]
        assert [r.run_id for r in store.list_runs(RunFilter(), 10)] == ["s@2", "s@1"]
        tick = store.tick_of_run("s@1")
        assert tick is not None and (tick.schedule_id, tick.nominal, tick.kind) == ("s", 60, "tick")
        assert store.tick_of_run("other") is None

    def test_a_locked_schedule_can_be_changed_and_deleted(self, store: Store) -> None:
        self.write(store, lambda tx: store.insert_schedule(tx, spec("s"), due()))

        def pause(tx: Transaction) -> None:
            row = store.lock_schedule(tx, "s")
            assert row is not None
            store.update_schedule(tx, row.spec, replace(row.state, paused=True))

        self.write(store, pause)
        assert store.schedules(["s"])[0].state.paused and store.next_schedule_due() is None
        assert self.write(store, lambda tx: store.delete_schedule(tx, "s"))
        assert not self.write(store, lambda tx: store.delete_schedule(tx, "s"))
        assert self.write(store, lambda tx: store.lock_schedule(tx, "s")) is None
