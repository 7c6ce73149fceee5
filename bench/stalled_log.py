"""A worker's memory when its log lines cannot be written: stderr a pipe nobody reads.

    .venv/bin/python bench/stalled_log.py [--runs 70000]

Starts ``--runs`` two-step workflows in a SQLite database, then one ``durably worker``
at INFO twice: its stderr thrown away, then a pipe never read (its lines wait for the
hooks thread, at most ``durably.deferral.MAX_PENDING``). Prints each worker's resident
memory once every run completed, and the difference.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import durably

APP = """
import durably

@durably.step
def hello(x: str) -> str:
    return "hello " + x

@durably.workflow
def greet(x: str) -> str:
    return hello(x)
"""


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def measure(folder: Path, runs: int, stderr: int) -> tuple[float, int]:
    """Seconds until ``runs`` completed, and the worker's RSS (kB) then."""
    db = folder / f"stalled-{stderr}.db"
    with durably.Engine(str(db), execute=False) as client:
        for i in range(runs):
            client.start_workflow("greet", str(i))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(folder), *sys.path]))
    command = [sys.executable, "-m", "durably", "--store", str(db), "--app", "app", "worker"]
    worker = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    began = time.monotonic()
    try:
        while True:
            time.sleep(0.5)
            with sqlite3.connect(db) as conn:
                done = conn.execute("SELECT count(*) FROM runs WHERE status = 'completed'")
                if done.fetchone()[0] >= runs:
                    return time.monotonic() - began, rss_kb(worker.pid)
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited ({worker.returncode})")
    finally:
        worker.kill()
        worker.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=70_000)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "app.py").write_text(APP)
        took, written = measure(folder, runs, subprocess.DEVNULL)
        print(f"stderr written:  {runs} runs in {took:5.1f} s, RSS {written / 1024:6.1f} MB")
        took, stuck = measure(folder, runs, subprocess.PIPE)
        print(f"stderr unread:   {runs} runs in {took:5.1f} s, RSS {stuck / 1024:6.1f} MB")
        print(f"held for the unwritten lines: {(stuck - written) / 1024:+.1f} MB")


if __name__ == "__main__":
    main()
