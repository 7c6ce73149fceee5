"""Schedules at scale: 10,000 schedules firing every minute on one engine.

    .venv/bin/python bench/schedules.py [--backend sqlite,postgres] [--schedules 10000]
                                        [--minutes 3] [--dbos]

For each backend, one engine (the defaults) holds N schedules of a workflow with
no step, in two shapes:

- spread: ``every="1m"`` with offsets spread evenly over the minute (as a fleet's
  schedules are), N/60 ticks a second;
- burst: ``cron="* * * * *"``: all N ticks on the same second.

Reported, over every tick of the last ``--minutes - 1`` minutes (the first minute
warms up): the lag from a tick's nominal instant (read from its run id) to its run
being written (fired), and to its workflow body beginning (p50 / p99 / max);
threads and RSS of the engine with no schedule and with N; CPU used by the engine
in the idle 20 s between two bursts. With ``--dbos``, the same burst through
DBOS's ``@DBOS.scheduled`` (``bench/schedules_dbos.py``, in the DBOS virtual
environment ``bench/run.py`` installs), N as given.

Needs PostgreSQL at postgresql://postgres@127.0.0.1/test for the postgres backend.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import durably  # noqa: E402

PG = "postgresql://postgres@127.0.0.1/test"
started: dict[str, float] = {}  # run id -> when its body began
lock = threading.Lock()


@durably.workflow(name="bench.sched.tick")
def tick() -> None:
    run_id = durably.current_run().run_id
    with lock:
        started.setdefault(run_id, time.time())  # the first execution's start


def nominal_of(run_id: str) -> float:
    text = run_id.rsplit("@", 1)[1].rstrip("Z")
    return datetime.fromisoformat(text + "+00:00").timestamp()


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fresh_store(backend: str, workdir: Path) -> str:
    if backend == "sqlite":
        return str(workdir / "schedules.db")
    import psycopg

    schema = f"benchsched_{os.getpid()}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return f"{PG}?schema={schema}"


def drop_store(url: str) -> None:
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {url.rsplit('=', 1)[1]} CASCADE")


def measure(backend: str, shape: str, count: int, minutes: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(dir=ROOT / "bench"))
    url = fresh_store(backend, workdir)
    started.clear()
    try:
        with durably.Engine(url) as engine:
            time.sleep(1)
            threads_before, rss_before = threading.active_count(), rss_mb()
            for i in range(count):
                options: dict[str, Any] = (
                    {"every": "1m", "offset": 60.0 * i / count}
                    if shape == "spread"
                    else {"cron": "* * * * *"}
                )
                engine.schedules.create(f"s{i:05d}", tick, **options)
            made = time.time()
            # Measure from the first whole minute after the warm-up minute.
            begin = (made // 60 + 2) * 60
            end = begin + 60 * (minutes - 1)
            idle: dict[str, float] = {}
            while time.time() < end + 5:
                now = time.time()
                if shape == "burst" and not idle and now % 60 > 30 and now > begin:
                    cpu0, t0 = cpu_seconds(), time.monotonic()  # between two bursts
                    time.sleep(20)
                    idle = {"cpu": (cpu_seconds() - cpu0) / (time.monotonic() - t0)}
                time.sleep(0.5)
            threads_after, rss_after = threading.active_count(), rss_mb()
            made_at = {
                r.run_id: r.created_at.timestamp()
                for r in engine.list_runs(workflow="bench.sched.tick", limit=10**7)
            }
        fired = [t - nominal_of(r) for r, t in made_at.items() if begin <= nominal_of(r) < end]
        with lock:
            lags = [t - nominal_of(r) for r, t in started.items() if begin <= nominal_of(r) < end]
        expected = count * (minutes - 1)
        return {
            "backend": backend,
            "shape": shape,
            "schedules": count,
            "ticks": len(lags),
            "expected": expected,
            "fired_p50": statistics.median(fired) if fired else None,
            "fired_p99": pct(fired, 0.99) if fired else None,
            "p50": statistics.median(lags) if lags else None,
            "p99": pct(lags, 0.99) if lags else None,
            "max": max(lags) if lags else None,
            "threads": (threads_before, threads_after),
            "rss_mb": (round(rss_before, 1), round(rss_after, 1)),
            "idle_cpu": idle.get("cpu"),
        }
    finally:
        drop_store(url)
        shutil.rmtree(workdir, ignore_errors=True)


def dbos(count: int, minutes: int) -> dict[str, Any]:
    python = ROOT / "bench" / ".venvs" / "dbos" / "bin" / "python"
    if not python.exists():
        return {"error": "no DBOS venv: run `python bench/run.py --systems dbos --only W1` once"}
    script = ROOT / "bench" / "schedules_dbos.py"
    done = subprocess.run(
        [str(python), str(script), str(count), str(minutes)],
        capture_output=True,
        text=True,
        timeout=60 * (minutes + 15),
    )
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1:] or done.returncode}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.0f} ms"


def row(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"| {result.get('system', 'durably')} | error: {result['error']} |"
    threads, rss = result["threads"], result["rss_mb"]
    idle = "-" if result.get("idle_cpu") is None else f"{100 * result['idle_cpu']:.1f}%"
    fired = f"{ms(result.get('fired_p50'))} / {ms(result.get('fired_p99'))}"
    return (
        f"| {result.get('system') or 'durably ' + result['backend']} | {result['shape']} | "
        f"{result['ticks']:,} of {result['expected']:,} | {fired} | {ms(result['p50'])} | "
        f"{ms(result['p99'])} | {ms(result['max'])} | {threads[0]} → {threads[1]} | "
        f"{rss[0]} → {rss[1]} MB | {idle} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="sqlite,postgres")
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--minutes", type=int, default=3)
    parser.add_argument("--shapes", default="spread,burst")
    parser.add_argument("--dbos", action="store_true")
    args = parser.parse_args()
    print(f"{platform.platform()}, {os.cpu_count()} cores, {args.schedules:,} schedules\n")
    print("| engine | shape | ticks measured | fired p50 / p99 | started p50 | p99 | max "
          "| threads | RSS | idle CPU |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for backend in args.backend.split(","):
        for shape in args.shapes.split(","):
            print(row(measure(backend, shape, args.schedules, args.minutes)), flush=True)
    if args.dbos:
        print(row({"system": "dbos sqlite", **dbos(args.schedules, args.minutes)}), flush=True)


if __name__ == "__main__":
    main()
