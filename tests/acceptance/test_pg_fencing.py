"""docs/guarantees.md, battery item 4: fencing. A worker inside a long step is SIGSTOPped past its
lease; a peer claims the run (epoch + 1) and finishes it; the first worker is then
SIGCONTinued: its step body finishes late, but its checkpoint and everything after
it are rejected (``LeaseLost``), so the journal holds the peer's checkpoint once and
the run's output is the peer's.

A stopped process is alive, so the peer cannot recover the run by the same-host pid
check: only the lease's expiry (decided by the database clock) lets it in.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

import durably
from durably.errors import LeaseLost
from durably.records import EntryStatus, JournalEntry, Lease
from durably.stores.postgres import PostgresStore
from tests.acceptance.effects import (
    executions,
    read_effects,
)
from tests.acceptance.pg_harness import (
    Schema,
    Worker,
    clean_stderr,
    wait_until,
)

LEASE, POLL = 2.0, 0.2
STEP_SECONDS = 3.0
RUN = "fenced-run"


def test_a_paused_lease_holder_cannot_commit(schema: Schema, workers: list[Worker]) -> None:
    settings = {"lease": LEASE, "poll": POLL}
    first = Worker(schema, name="stopped", **settings).wait_ready()
    workers.append(first)
    with schema.client() as client:
        client.with_options(run_id=RUN).start_workflow("pg.long", RUN, STEP_SECONDS, 2)
        wait_until(
            lambda: any(e.pid == first.pid for e in read_effects(schema.effects)),
            15,
            "the first worker to enter the long step",
        )
        (owner, epoch) = schema.query("SELECT owner, epoch FROM runs WHERE run_id = %s", (RUN,))[0]
        peer = Worker(schema, name="peer", **settings).wait_ready()
        workers.append(peer)
        first.signal(signal.SIGSTOP)

        output = client.handle(RUN).result(timeout=30)  # the peer finishes it
        finished_at = time.time()
        run = client.get_run(RUN)
    assert run.status is durably.RunStatus.COMPLETED

    first.signal(signal.SIGCONT)
    # The first worker's body wakes up, finishes, and tries to checkpoint.
    wait_until(
        lambda: any(e.pid == first.pid and e.event == "end" for e in read_effects(schema.effects)),
        10,
        "the paused body to finish",
    )
    time.sleep(1.0)  # time for its late checkpoint (and anything after it) to be tried

    runs_of_step = executions(read_effects(schema.effects))
    long_runs = runs_of_step[(RUN, "long")]
    assert [x.pid for x in long_runs] == [first.pid, peer.pid], long_runs
    late, winner = long_runs
    assert late.end is not None and late.end > finished_at, (
        "the paused worker's body must have finished after the peer finished the run"
    )
    journal = schema.journal()[RUN]
    assert [(seq, name, status) for seq, name, status, _ in journal] == [
        (0, "pg.long.body", "completed"),
        (1, "pg.long.after", "completed"),
        (2, "pg.long.after", "completed"),
    ], "one checkpoint per position, no duplicate"
    assert json.loads(journal[0][3] or "null") == winner.token, (
        "the long step's checkpoint is the peer's"
    )
    assert output == [json.loads(j[3] or "null") for j in journal]
    assert all(token.startswith(f"{peer.pid}-") for token in output), "the output is the peer's"
    for step in ("after1", "after2"):
        assert [x.pid for x in runs_of_step[(RUN, step)]] == [peer.pid], (
            "the paused worker must not go on past its rejected checkpoint"
        )
    (now_epoch, now_owner, attempts) = schema.query(
        "SELECT epoch, owner, attempts FROM runs WHERE run_id = %s", (RUN,)
    )[0]
    assert now_epoch > epoch and now_owner is None and attempts == 2
    assert first.alive(), "a fenced-out worker keeps working (it just abandons the run)"
    assert not clean_stderr(first), first.describe()
    assert not clean_stderr(peer), peer.describe()

    # The same fence, asked directly: a write with the paused worker's lease is refused.
    store = PostgresStore.from_url(schema.url)
    try:
        stale = Lease(RUN, owner, epoch)
        entry = JournalEntry(0, "step", "pg.long.body", EntryStatus.COMPLETED, '"x"', None, 1, 0, 0)
        with pytest.raises(LeaseLost):
            store.transact(lambda tx: store.append_entry(tx, stale, entry))
        with pytest.raises(LeaseLost):
            store.transact(
                lambda tx: store.finish_run(tx, stale, durably.RunStatus.FAILED, None, None)
            )
    finally:
        store.close()
    assert schema.journal()[RUN] == journal
    assert client_output(schema) == output


def client_output(schema: Schema) -> object:
    return json.loads(schema.query("SELECT output FROM runs WHERE run_id = %s", (RUN,))[0][0])
