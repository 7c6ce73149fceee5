"""``handle.result()`` in a client process (``Engine(url, execute=False)``) returns as soon
as a worker in another process finishes the run: PostgreSQL's NOTIFY wakes it, not
polling. The client polls only every 5 s here, and its polling backs off (5 ms, 10 ms,
... up to the poll interval), so without NOTIFY a 1.5 s run would be seen about a
second late.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from tests.acceptance.pg_harness import (
    Schema,
    Worker,
    wait_all_terminal,
)

RUNS = 12
STEP_MS = 1500


def test_result_returns_promptly_when_a_worker_elsewhere_finishes(
    schema: Schema, workers: list[Worker]
) -> None:
    workers.append(Worker(schema, "--concurrency", "16", lease=2, poll=0.2).wait_ready())
    ids = [f"notify-{i}" for i in range(RUNS)]
    with schema.client(poll_interval=5.0) as client:

        def wait_for(run_id: str) -> float:
            client.handle(run_id).result(timeout=30)
            return time.time()

        for run_id in ids:
            client.with_options(run_id=run_id).start_workflow("pg.work", run_id, STEP_MS)
        with ThreadPoolExecutor(RUNS) as pool:
            returned = dict(zip(ids, pool.map(wait_for, ids), strict=True))
    wait_all_terminal(schema, ids, timeout=5)
    finished = dict(schema.query("SELECT run_id, updated_at FROM runs"))  # database clock
    delays = sorted(returned[r] - finished[r] for r in ids)
    median = statistics.median(delays)
    print(
        f"\nfinish (commit) -> result() returned in the client: median {median * 1000:.0f} ms, "
        f"max {delays[-1] * 1000:.0f} ms over {RUNS} runs"
    )
    assert min(delays) > -0.05, "result() cannot return before the finish committed"
    assert median < 0.25, delays
    assert delays[-1] < 0.6, delays
