"""The durably app the PostgreSQL benchmark's `durably worker` processes run.

    PG_BENCH_URL=postgresql://...?schema=s PG_BENCH_MARKS=/path/marks.txt \\
        python -m durably.cli worker --app pg_durably_app:engine     # cwd: bench/

The workflows are those of `pg_durably_workflows`. PG_BENCH_LEASE sets the engine's
lease (default 30 s). PG_BENCH_HOSTNAME makes this worker's lease owner name another
host, so peers on this machine cannot see its pid and must wait for the lease to
expire: the path a crash on another machine takes.
"""

from __future__ import annotations

import os

import pg_durably_workflows  # noqa: F401  registers pg.latency, pg.three, pg.slow

import durably
import durably.worker.claimer

if os.environ.get("PG_BENCH_HOSTNAME"):
    # Lease owners are "host:pid:nonce"; a peer checks the pid only when the host is its own.
    durably.worker.claimer.HOST = os.environ["PG_BENCH_HOSTNAME"]

engine = durably.Engine(
    os.environ["PG_BENCH_URL"], lease=float(os.environ.get("PG_BENCH_LEASE", 30))
)
