"""Item 1, part two, in a new process: are the N sleepers still there, still asleep?

    python bench/primitives_reopen.py N DB   → one JSON line

A fresh engine is launched on the file (so it would claim anything due) and
given a moment; then every run must still be ``sleeping`` with its recorded
wake time about an hour after it was started.
"""

from __future__ import annotations

import json
import os
import sys
import time

import primitives_workflows  # noqa: F401  (registers the workflows by name)

import durably

SETTLE = 1.5  # seconds the fresh engine runs before counting


def main(n: int, db: str) -> dict[str, object]:
    wal = db + "-wal"  # left behind by the engine that closed, if any
    wal_left = os.path.getsize(wal) / 2**20 if os.path.exists(wal) else 0.0
    began = time.perf_counter()
    engine = durably.Engine(db).launch()
    opened = time.perf_counter() - began
    time.sleep(SETTLE)
    sleeping = engine.list_runs(status="sleeping", limit=n + 1)
    every = engine.list_runs(limit=n + 1)
    claimed = len(engine._executor.inflight)  # type: ignore[union-attr]
    now = time.time()
    began = time.perf_counter()
    ahead = []  # hours from now until each run's recorded wake time
    for run in sleeping:
        timer = next(s for s in engine.steps(run.run_id) if s.kind == "sleep")
        ahead.append((timer.output - now) / 3600)
    read_timers = time.perf_counter() - began
    engine.close()
    return {
        "runs": n,
        "wal_left_mb": wal_left,
        "open_s": opened,
        "total": len(every),
        "sleeping": len(sleeping),
        "claimed_by_fresh_engine": claimed,
        "wake_in_h_min": min(ahead, default=None),
        "wake_in_h_max": max(ahead, default=None),
        "read_timers_s": read_timers,
    }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), sys.argv[2])))
