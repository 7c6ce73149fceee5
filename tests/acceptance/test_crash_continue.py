"""SIGKILL around continue-as-new: the chain finishes, no link is lost or doubled."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

APP = textwrap.dedent(
    """
    import os, sys
    import durably

    EFFECTS = os.environ["EFFECTS"]

    @durably.step
    def tick(i: int) -> int:
        with open(EFFECTS, "a") as log:
            log.write(f"{i}\\n")
        return i

    @durably.workflow(name="crash.chain")
    def chain(i: int, last: int) -> int:
        tick(i)
        if i < last:
            durably.continue_as_new(i + 1, last)
        return i

    if __name__ == "__main__":
        with durably.Engine(sys.argv[1], poll_interval=0.05) as engine:
            # A crash may come before the start committed: starting again with
            # the same run id is how a caller recovers, and never runs it twice.
            handle = engine.with_options(run_id="chain").start_workflow(chain, 0, 5)
            print(handle.result(timeout=30))
    """
)

POINTS = [
    f"{point}:{k}"
    for point in ("commit.before", "commit.after", "run.before_finish", "run.after_finish")
    for k in (2, 3, 5)
]


@pytest.mark.parametrize("crash_at", POINTS)
def test_continue_as_new_survives_sigkill(tmp_path: Path, crash_at: str) -> None:
    app, db, effects = tmp_path / "chainapp.py", tmp_path / "chain.db", tmp_path / "effects"
    app.write_text(APP)
    env = {**os.environ, "EFFECTS": str(effects), "PYTHONPATH": os.pathsep.join(sys.path)}
    crashed = subprocess.run(
        [sys.executable, str(app), str(db)],
        env={**env, "DURABLY_CRASH_AT": crash_at},
        capture_output=True,
        timeout=60,
    )
    assert crashed.returncode == -9, f"{crash_at} never hit: {crashed.stderr.decode()}"
    recovered = subprocess.run(
        [sys.executable, str(app), str(db)], env=env, capture_output=True, timeout=60
    )
    assert recovered.returncode == 0, recovered.stderr.decode()
    assert recovered.stdout.decode().strip() == "5"
    ticks = [int(line) for line in effects.read_text().split()]
    assert sorted(set(ticks)) == [0, 1, 2, 3, 4, 5]
    # A tick may run again only in the window body-done-checkpoint-not-committed:
    # at most once more, and only for the one link the crash interrupted.
    assert len(ticks) - 6 <= 1, ticks
    with sqlite3.connect(db) as conn:
        links = conn.execute(
            "SELECT status, continued_to FROM runs WHERE workflow = 'crash.chain'"
        ).fetchall()
    assert len(links) == 6, links  # no successor created twice
    assert sum(1 for status, nxt in links if status == "completed" and nxt is None) == 1
