"""docs/guarantees.md, battery item 6: heartbeat starvation. A step that blocks the event loop of an
async workflow (``time.sleep`` in an async step) and a sync step that spins in pure
Python, each for 3 x lease, keep their lease: the heartbeat renews it from its own
thread and connection. A live peer polls all along and would take over an expired
lease; it takes nothing (one execution per step, one claim per run).
"""

from __future__ import annotations

import json
import time

import pytest

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
STARVE = 3 * LEASE


@pytest.mark.parametrize(
    ("workflow", "step", "last"),
    [("pg.block_loop", "block", "after"), ("pg.gil", "spin", "after1")],
    ids=["event-loop", "gil"],
)
def test_a_starving_step_keeps_its_lease(
    workflow: str, step: str, last: str, schema: Schema, workers: list[Worker]
) -> None:
    settings = {"lease": LEASE, "poll": POLL}
    holder = Worker(schema, name="holder", **settings).wait_ready()
    workers.append(holder)
    run_id = f"starve-{step}"
    with schema.client() as client:
        client.with_options(run_id=run_id).start_workflow(workflow, run_id, STARVE)
        wait_until(
            lambda: any(e.pid == holder.pid for e in read_effects(schema.effects)),
            15,
            "the holder to enter the step",
        )
        # A peer on "another machine" (no pid check either) waits to pounce on an expiry.
        peer = Worker(schema, name="peer", host="elsewhere", **settings).wait_ready()
        workers.append(peer)
        leases = []  # lease left by the database clock, sampled while the step starves
        while True:
            (until, now, status) = schema.query(
                "SELECT lease_until, extract(epoch from clock_timestamp())::float8, status "
                "FROM runs WHERE run_id = %s",
                (run_id,),
            )[0]
            if any(e.event == "end" for e in read_effects(schema.effects)):
                break  # (read after the sample: a finished run's lease is gone by now)
            assert until is not None, f"the run was released mid-step ({status})"
            leases.append(until - now)
            time.sleep(0.05)
        output = client.handle(run_id).result(timeout=15)

    runs_of = executions(read_effects(schema.effects))
    (body,) = runs_of[(run_id, step)]
    assert body.pid == holder.pid and body.end is not None
    assert body.end - body.start >= STARVE - 0.01
    assert [x.pid for x in runs_of[(run_id, last)]] == [holder.pid]
    run = schema.runs()[run_id]
    assert run["status"] == "completed" and run["attempts"] == 1, run
    assert output == [json.loads(j[3] or "null") for j in schema.journal()[run_id]]
    assert not any(e.pid == peer.pid for e in read_effects(schema.effects))
    assert not clean_stderr(holder) and not clean_stderr(peer), holder.describe()
    print(
        f"\n{workflow}: {STARVE:g}s starving step; lease left (db clock) while it ran: "
        f"min {min(leases):.2f}s of {LEASE:g}s over {len(leases)} samples"
    )
    assert min(leases) > 0, "the lease lapsed while the step ran"
