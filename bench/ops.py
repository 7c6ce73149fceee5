"""Operating at scale: `durably runs list` on 1,000,000 runs, and a purge of 1,000,000
finished runs while a W1-style workload runs; SQLite and PostgreSQL.

    .venv/bin/python bench/ops.py [--backend sqlite,postgres] [--runs 1000000] [--repeat 3]

list: the database is seeded with --runs runs (rows written straight into the
tables: starting a million runs one by one would take longer than the measurement
is worth), spread over 30 days, 10 workflows, every status. Each listing the CLI
offers is timed in process (`engine.list_runs`, the first page of 50, median of 15
after one warm-up), and the whole `durably runs list` process once per repeat
(interpreter start-up included).

purge: the database is seeded with --runs completed runs, 60 days old, with three
journal entries each. A worker runs W1-style load (3-step workflows started and
awaited 20 at a time) throughout; its throughput is measured for 10 s before the
purge and for the whole purge, which is (a) the engine's retention sweeper in the
same process and (b) `durably db purge --older-than 30d --yes` from another process.
Reported: workflows/s before and during, and the drop.

Needs PostgreSQL at postgresql://postgres@127.0.0.1/test for the postgres backend.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import durably  # noqa: E402
from durably.worker.sweeper import Sweeper  # noqa: E402

PG = "postgresql://postgres@127.0.0.1/test"
WORKFLOWS = [f"{area}.{verb}" for area in ("billing", "orders", "mail") for verb in "abc"]
WORKFLOWS.append("reports.nightly")
DAY = 86400.0


@durably.step
def add_one(x: int) -> int:
    return x + 1


@durably.workflow(name="bench.ops.three")
def three(x: int) -> int:
    return add_one(add_one(add_one(x)))


# -- seeding ----------------------------------------------------------------------
RUN_COLUMNS = ["run_id", "workflow", "status", "input", "output", "queue", "root_id",
               "attempts", "created_at", "updated_at", "available_at"]  # fmt: skip
JOURNAL_COLUMNS = ["run_id", "seq", "kind", "name", "status", "output", "attempts",
                   "started_at", "finished_at", "call_site"]  # fmt: skip


def mixed_rows(n: int, now: float) -> Iterator[tuple[Any, ...]]:
    """Runs of every status over 30 days: mostly completed, a few of the others."""
    rng = random.Random(7)
    weights = [("completed", 90), ("failed", 4), ("cancelled", 2), ("sleeping", 2)]
    weights += [("waiting", 1), ("pending", 1), ("running", 1)]
    statuses = [s for s, w in weights for _ in range(w)]
    for i in range(n):
        created = now - 30 * DAY * (n - i) / n
        status = rng.choice(statuses)
        due = created + DAY if status in ("sleeping", "pending") else None
        output = "1" if status == "completed" else None
        run_id = f"{int(created * 1e6):016x}{i:08x}"
        yield (run_id, rng.choice(WORKFLOWS), status, '{"args":[1]}', output, "default",
               run_id, 1, created, created + 1, due)  # fmt: skip


def finished_rows(n: int, now: float) -> Iterator[tuple[Any, ...]]:
    for i in range(n):
        created = now - 60 * DAY - (n - i) / 1000
        run_id = f"old{i:012d}"
        yield (run_id, "bench.ops.three", "completed", '{"args":[1]}', "4", "default",
               run_id, 1, created, created + 0.01, None)  # fmt: skip


def journal_rows(n: int, now: float) -> Iterator[tuple[Any, ...]]:
    for i in range(n):
        started = now - 60 * DAY - (n - i) / 1000
        for seq in range(3):
            yield (f"old{i:012d}", seq, "step", "add_one", "completed", str(seq + 2), 1,
                   started, started + 0.001, "x")  # fmt: skip


def seed(url: str, runs: Iterator[tuple[Any, ...]], steps: Iterator[tuple[Any, ...]]) -> None:
    durably.Engine(url, execute=False).close()  # the schema
    tables = (("runs", RUN_COLUMNS, runs), ("journal", JOURNAL_COLUMNS, steps))
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(PG, autocommit=True) as pg:
            pg.execute(f"SET search_path TO {url.split('schema=')[1]}")
            for table, columns, rows in tables:
                names = ", ".join(columns)
                with pg.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            pg.execute("ANALYZE")
        return
    conn = sqlite3.connect(url)
    conn.execute("PRAGMA synchronous = OFF")
    for table, columns, rows in tables:
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        while chunk := [r for _, r in zip(range(50_000), rows, strict=False)]:
            conn.executemany(sql, chunk)
            conn.commit()
    conn.execute("ANALYZE")
    conn.commit()
    conn.close()


# -- measuring --------------------------------------------------------------------
def timed_ms(fn: Callable[[], Any], times: int = 15) -> float:
    fn()  # warm-up: the statement, the pages
    samples = []
    for _ in range(times):
        began = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples)


def measure_list(url: str) -> dict[str, float]:
    hour_ago = time.time() - 3600
    with durably.Engine(url, execute=False) as engine:
        listings: dict[str, Callable[[], Any]] = {
            "runs list": lambda: engine.list_runs(limit=50),
            "--status failed": lambda: engine.list_runs(status="failed", limit=50),
            "--status running": lambda: engine.list_runs(status="running", limit=50),
            "--status completed": lambda: engine.list_runs(status="completed", limit=50),
            "--status waiting,sleeping": lambda: engine.list_runs(
                status=["waiting", "sleeping"], limit=50
            ),
            "--workflow 'billing.*'": lambda: engine.list_runs(workflow="billing.*", limit=50),
            "--workflow reports.nightly --status failed": lambda: engine.list_runs(
                workflow="reports.nightly", status="failed", limit=50
            ),
            "--since 1h": lambda: engine.list_runs(since=hour_ago, limit=50),
            "page 2 (--cursor)": lambda: engine.list_runs(
                limit=50, cursor=engine.list_runs(limit=50).cursor
            ),
        }
        result = {name: timed_ms(fn) for name, fn in listings.items()}
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), DURABLY_STORE=url)
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "durably", "runs", "list"], env=env,
                   capture_output=True, check=True)  # fmt: skip
    result["`durably runs list` process, start-up included"] = (time.perf_counter() - began) * 1000
    return result


class Load:
    """W1-style load on a launched engine: 3-step workflows, 20 in flight, counted."""

    def __init__(self, engine: durably.Engine) -> None:
        self.engine, self.done, self.stop = engine, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            handles = [self.engine.start_workflow(three, 1) for _ in range(20)]
            for handle in handles:
                handle.result(timeout=120)
            self.done += len(handles)

    def rate(self, during: Callable[[], Any]) -> tuple[float, float]:
        before, began = self.done, time.perf_counter()
        during()
        seconds = time.perf_counter() - began
        return (self.done - before) / seconds, seconds


def measure_purge(url: str, runs: int, how: str, window: float) -> dict[str, float]:
    """W1-style throughput for 10 s, then while a purge runs (at most ``window`` s)."""
    seed(url, finished_rows(runs, time.time()), journal_rows(runs, time.time()))
    engine = durably.Engine(url).launch()
    try:
        load = Load(engine)
        time.sleep(2)  # warm
        before, _ = load.rate(lambda: time.sleep(10))
        old = engine.count_runs(until=time.time() - 30 * DAY)
        if how == "sweeper":  # the engine's own sweeper, on cue rather than on its timer
            retention = durably.Retention(completed="30d")
            owner = engine.executor.owner if engine.executor else "bench"
            stop = threading.Event()
            sweeper = Sweeper(engine.store, engine.clock, retention, owner=owner, lease=30,
                              stop=stop)  # fmt: skip
            threading.Timer(window, stop.set).start()
            during, seconds = load.rate(sweeper.sweep)
        else:
            env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), DURABLY_STORE=url)
            command = [sys.executable, "-m", "durably", "db", "purge", "--older-than", "30d",
                       "--status", "completed", "--yes"]  # fmt: skip

            def purge() -> None:
                with subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL) as proc:
                    try:
                        proc.wait(window)
                    except subprocess.TimeoutExpired:
                        proc.terminate()  # mid-transaction is safe: it rolls back

            during, seconds = load.rate(purge)
        load.stop.set()
        load.thread.join(120)
        deleted = old - engine.count_runs(until=time.time() - 30 * DAY)
    finally:
        engine.close()
    return {"before": before, "during": during, "seconds": seconds, "deleted": deleted}


# -- backends ---------------------------------------------------------------------
def fresh(backend: str, work: Path, name: str) -> tuple[str, Callable[[], None]]:
    if backend == "sqlite":
        return str(work / f"{name}.db"), lambda: None
    import psycopg

    schema = f"benchops_{name}_{os.getpid()}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    def drop() -> None:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    return f"{PG}?schema={schema}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="sqlite,postgres")
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="list,purge")
    parser.add_argument(
        "--window",
        type=float,
        default=120.0,
        help="seconds of purge measured (a purge of 1M runs takes longer)",
    )
    args = parser.parse_args()
    print(f"{platform.platform()}, {os.cpu_count()} cores, {args.runs:,} runs\n")
    for backend in args.backend.split(","):
        with tempfile.TemporaryDirectory(dir=ROOT / "bench") as tmp:
            work = Path(tmp)
            if "list" in args.only:
                url, drop = fresh(backend, work, "list")
                try:
                    began = time.perf_counter()
                    seed(url, mixed_rows(args.runs, time.time()), iter(()))
                    print(f"{backend}: seeded in {time.perf_counter() - began:.0f} s")
                    rounds = [measure_list(url) for _ in range(args.repeat)]
                finally:
                    drop()
                print(f"| {backend}: first page of 50 | median ms |\n|---|---|")
                for name in rounds[0]:
                    print(f"| {name} | {statistics.median(r[name] for r in rounds):.1f} |")
                print()
            if "purge" in args.only:
                print(f"| {backend}: purging {args.runs:,} finished runs | W1-style wf/s "
                      "before | during | drop | deleted | purge rate |")  # fmt: skip
                print("|---|---|---|---|---|---|")
                for how in ("sweeper", "durably db purge"):
                    url, drop = fresh(backend, work, "purge")
                    try:
                        r = measure_purge(
                            url, args.runs, "sweeper" if how == "sweeper" else "cli", args.window
                        )
                    finally:
                        drop()
                        for f in work.glob("purge.db*"):
                            f.unlink()
                    fall = 1 - r["during"] / r["before"]
                    rate = r["deleted"] / r["seconds"]
                    print(f"| {how} | {r['before']:.0f} | {r['during']:.0f} | {fall:.0%} "
                          f"| {r['deleted']:,.0f} in {r['seconds']:.0f} s | {rate:,.0f} runs/s |",
                          flush=True)  # fmt: skip
                print()


if __name__ == "__main__":
    main()
