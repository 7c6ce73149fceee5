"""The SQLite floor for W2: the cost of one small WAL-mode commit on this machine.

`--mode normal` is `synchronous=NORMAL` (WAL commits without fsync), `--mode full`
is `synchronous=FULL` (one fsync per commit). A durable step needs at least one
commit, so these bound what any SQLite-backed engine can reach per step.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import common

COMMITS = {"normal": 5000, "full": 1000}


def w2(args: Any) -> dict[str, Any]:
    mode = "full" if args.mode == "full" else "normal"
    db = sqlite3.connect(args.dir / "floor.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={mode.upper()}")
    db.execute("CREATE TABLE journal (id INTEGER PRIMARY KEY, run TEXT, output TEXT)")
    started = time.perf_counter()
    for i in range(COMMITS[mode]):
        db.execute("INSERT INTO journal (run, output) VALUES (?, ?)", ("run-1", str(i)))
    seconds = time.perf_counter() - started
    db.close()
    return {"seconds": seconds, "us_per_step": seconds / COMMITS[mode] * 1e6}


if __name__ == "__main__":
    common.main(__file__, {"W2": w2})
