"""Upkeep: leases are renewed even while the other chores wait on the database."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import durably
from durably.stores.sqlite import SQLiteStore

STEP_SECONDS = 3.5  # longer than the lease: only renewals keep the run


class StuckChoresStore(SQLiteStore):
    """Reading cancellation requests hangs, as a read may during a database outage."""

    stuck = threading.Event()

    def cancel_requests(self, owner: str) -> dict[str, str]:
        self.stuck.set()
        time.sleep(STEP_SECONDS + 2)
        return {}


@durably.step
def long_step() -> str:
    time.sleep(STEP_SECONDS)
    return "done"


@durably.workflow(name="upkeep.long")
def long_run() -> str:
    return long_step()


def test_leases_are_renewed_while_the_chores_are_stuck(tmp_path: Path) -> None:
    store = StuckChoresStore(str(tmp_path / "u.db"))
    with durably.Engine(store, lease=1.5, poll_interval=0.05) as engine:
        handle = engine.start_workflow(long_run)
        assert StuckChoresStore.stuck.wait(5)
        assert handle.result(timeout=STEP_SECONDS + 5) == "done"
        # One execution: had the lease run out, the run would have been claimed again.
        assert engine.get_run(handle.run_id).attempts == 1
        assert [s.attempts for s in engine.steps(handle.run_id)] == [1]
