"""Waiting and composition: what sleeping, ticking and signalling cost, on embedded SQLite.

    .venv/bin/python bench/primitives.py [--only hold tick signal peer] [--repeat N] [--json]

hold    10,000 runs each sleeping an hour, held by one engine (a fresh process per
        variant); then a new process reopens the file and checks none was lost.
tick    one run sleeping 10 ms 1,000 times in a loop.
signal  send_signal → the waiting run's next step starts, 200 rounds, one process.
peer    DBOS Transact holding N workflows in DBOS.sleep(3600), SQLite system database.

With --repeat N every figure is the median of N repetitions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import primitives_workflows as wfs
from primitives_report import table

import durably

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
Result = dict[str, Any]


def child(python: str | Path, script: str, *args: object) -> Result:
    """Run a bench script in a fresh process and parse the JSON line it prints."""
    command = [str(python), str(HERE / script), *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, cwd=HERE)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# -- item 1: hold 10,000 sleepers ----------------------------------------------------------
def hold(kind: str, runs: int) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "hold.db")
        held = child(sys.executable, "primitives_hold.py", kind, runs, db)
        reopened = child(sys.executable, "primitives_reopen.py", runs, db)
    return held | {f"reopen_{k}": v for k, v in reopened.items()}


# -- item 2: a run that sleeps 10 ms 1,000 times -------------------------------------------
def tick(engine: durably.Engine, wf: durably.Workflow[Any, Any]) -> Result:
    times, seconds = 1000, 0.01
    began = time.perf_counter()
    engine.start_workflow(wf, times, seconds).result(timeout=300)
    total = time.perf_counter() - began
    return {"total_s": total, "slept_s": times * seconds, "ratio": total / (times * seconds)}


# -- item 3: send_signal → the next step starts --------------------------------------------
def signal(engine: durably.Engine, wf: durably.Workflow[Any, Any], rounds: int = 200) -> Result:
    wfs.stamps.clear()
    handle = engine.start_workflow(wf, rounds)
    for _ in range(rounds):
        while engine.get_run(handle.run_id).status is not durably.RunStatus.WAITING:
            time.sleep(0.0005)
        wfs.stepped.clear()
        engine.send_signal(handle.run_id, "go", time.perf_counter())
        if not wfs.stepped.wait(30):
            raise RuntimeError(f"run {handle.run_id}: no step 30 s after its signal")
    handle.result(timeout=30)
    ms = [(started - sent) * 1000 for sent, started in wfs.stamps]
    return {
        "median_ms": statistics.median(ms),
        "p99_ms": statistics.quantiles(ms, n=100, method="inclusive")[98],
        "first20_median_ms": statistics.median(ms[:20]),
        "last20_median_ms": statistics.median(ms[-20:]),
    }


def in_engine(measure: Callable[[durably.Engine], Result]) -> Result:
    with tempfile.TemporaryDirectory() as tmp, durably.Engine(os.path.join(tmp, "p.db")) as engine:
        return measure(engine)


# -- item 4: the peer ----------------------------------------------------------------------
def peer_python() -> Path:
    """An interpreter with dbos: the shared bench venv if it works, else one of our own."""
    for name in ("dbos", "dbos-prim"):
        python = VENVS / name / "bin" / "python"
        if python.exists() and subprocess.run([python, "-c", "import dbos"]).returncode == 0:
            return python
    venv = VENVS / "dbos-prim"
    print(f"creating {venv} (pip install dbos) …", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([venv / "bin" / "pip", "install", "-q", "dbos"], check=True)
    return venv / "bin" / "python"


def peer(kind: str, runs: int) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        return child(peer_python(), "primitives_dbos.py", kind, runs, tmp)


# -- driver --------------------------------------------------------------------------------
def measurements(args: argparse.Namespace) -> dict[str, Callable[[], Result]]:
    chosen: dict[str, Callable[[], Result]] = {}
    if "hold" in args.only:
        chosen["hold_sync"] = lambda: hold("sync", args.runs)
        chosen["hold_async"] = lambda: hold("async", args.runs)
    if "tick" in args.only:
        chosen["tick_sync"] = lambda: in_engine(lambda e: tick(e, wfs.tick))
        chosen["tick_async"] = lambda: in_engine(lambda e: tick(e, wfs.tick_async))
    if "signal" in args.only:
        chosen["signal_sync"] = lambda: in_engine(lambda e: signal(e, wfs.listen))
        chosen["signal_async"] = lambda: in_engine(lambda e: signal(e, wfs.listen_async))
    if "peer" in args.only:
        chosen["peer_sync"] = lambda: peer("sync", args.peer_runs)
        chosen["peer_async"] = lambda: peer("async", args.peer_runs)
    return chosen


def median_of(samples: list[Result]) -> Result:
    """Field by field: the median of numbers, the first value of anything else."""
    merged: Result = {}
    for key, first in samples[0].items():
        values = [s[key] for s in samples]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        merged[key] = statistics.median(values) if numeric else first
        if numeric and len(values) > 1:
            merged[key + "_all"] = values
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", default=["hold", "tick", "signal", "peer"],
                        choices=["hold", "tick", "signal", "peer"])  # fmt: skip
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--runs", type=int, default=10_000, help="sleepers held (item 1)")
    parser.add_argument("--peer-runs", type=int, default=1_000, help="DBOS sleepers (item 4)")
    parser.add_argument("--json", action="store_true", help="also print the raw figures")
    args = parser.parse_args()
    results: dict[str, Result] = {}
    for name, measure in measurements(args).items():
        samples = []
        for i in range(args.repeat):
            print(f"{name} [{i + 1}/{args.repeat}] …", file=sys.stderr, flush=True)
            samples.append(measure())
        results[name] = median_of(samples)
    print(table(results, args))
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
