"""Shared plumbing for the per-system benchmark scripts (stdlib only).

Each system script defines its workloads as plain functions and hands them to
`main`, which parses the command line, runs one workload and prints one JSON line.
W3's parent role (spawn, SIGKILL, restart, count effects) lives here too, so every
system is crashed and measured the same way.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

W1_WORKFLOWS = 1000
W2_STEPS = 200
#: W2 workflows run one after another in each process; the median one is reported (the
#: first also pays the process's warm-up, and one 200-step run is only milliseconds long).
W2_ROUNDS = 5
W5_WORKFLOWS = 100
W5_SLEEP = 0.1
W3_STEPS = 5
W3_CRASH_STEP = 3
W3_HANG = 60.0  # step 3 sleeps this long in the first process, so it is killed there
POLL = 0.005


def effect(workdir: Path, step: int) -> None:
    """Record one execution of a W3 step outside the library's database."""
    with open(workdir / "effects.txt", "a") as f:
        f.write(f"step{step}\n")


def w3_step_body(workdir: Path, role: str, step: int) -> None:
    """What every W3 step does: record itself, and step 3 hangs in the crash role."""
    effect(workdir, step)
    if role == "crash" and step == W3_CRASH_STEP:
        time.sleep(W3_HANG)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(POLL)


def run_w3_parent(script: str, workdir: Path, mode: str) -> dict[str, Any]:
    """Start a child, SIGKILL it during step 3, restart, time the recovery."""
    effects = workdir / "effects.txt"
    base = [sys.executable, script, "W3", "--mode", mode, "--dir", str(workdir)]
    child = subprocess.Popen([*base, "--role", "crash"])
    try:
        wait_until(
            lambda: effects.exists() and f"step{W3_CRASH_STEP}" in effects.read_text(),
            60,
            "step 3 to start",
        )
    finally:
        child.kill()
        child.wait()
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [*base, "--role", "recover"], capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        return {"error": "recovery did not finish within 120 s"}
    seconds = time.perf_counter() - started
    counts = Counter(effects.read_text().split())
    executions = [counts[f"step{i}"] for i in range(1, W3_STEPS + 1)]
    result: dict[str, Any] = {"seconds": seconds, "executions": executions}
    if done.returncode != 0:
        result["error"] = last_line(done.stderr) or f"recover exited {done.returncode}"
    else:
        result.update(json_line(done.stdout))
    return result


def json_line(stdout: str) -> dict[str, Any]:
    """The last line of `stdout` that is a JSON object (libraries print too)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON result line in output")


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def w2_result(rounds: list[float]) -> dict[str, Any]:
    """W2's JSON line from the seconds each of its ``W2_ROUNDS`` workflows took."""
    seconds = statistics.median(rounds)
    return {
        "seconds": seconds,
        "us_per_step": seconds / W2_STEPS * 1e6,
        "rounds_us_per_step": [round(r / W2_STEPS * 1e6, 1) for r in rounds],
    }


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main(script: str, workloads: dict[str, Callable[[argparse.Namespace], dict[str, Any]]]) -> None:
    """Parse `W1|W2|W3|W5 [--mode M] [--dir D] [--role R]`, run it, print one JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", choices=sorted(workloads))
    parser.add_argument("--mode", default="default")
    parser.add_argument("--dir", default=".", help="working directory for database files")
    parser.add_argument("--role", default="parent", choices=["parent", "crash", "recover"])
    args = parser.parse_args()
    args.dir = Path(args.dir).resolve()
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.workload == "W3" and args.role == "parent":
        result = run_w3_parent(script, args.dir, args.mode)
    else:
        result = workloads[args.workload](args)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
