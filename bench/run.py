"""Run the durably benchmarks side by side with the peer libraries and print a table.

    python bench/run.py [--only W1,W2] [--systems durably,dbos] [--repeat 3] [--json out.json]
                        [--observe]

Each peer is pip-installed from PyPI into its own virtual environment under
bench/.venvs/ (reused while healthy). Every measurement runs a fresh process of
bench/systems/<system>_bench.py in a fresh directory under bench/.work/; the table
shows the median of --repeat runs. A peer that fails to install or crashes shows as
an error row and the run goes on. Stdlib only; run it with Python 3.11+.

``--observe`` adds rows of W1 and W2 with durably's observability on: INFO logs to a
file (and to a handler that drops them: durably's own part), Prometheus metrics,
OpenTelemetry tracing (the SDK, spans dropped; and the API alone, durably's own part).
Each process of those rows measures durably with and without it in turn
(bench/systems/observing.py); the comparison is the extra time of the observed
segments over the plain ones of the same process, median over processes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from glob import glob
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH / "systems"))
from common import json_line, last_line  # noqa: E402


@dataclass(frozen=True)
class System:
    script: str
    requirement: str = ""  # pip requirement; empty runs in an existing interpreter
    module: str = ""  # imported to check that a reused venv is healthy
    python: str = "3.11"


SYSTEMS = {
    "durably": System("durably_bench.py"),
    "sqlite": System("sqlite_floor.py"),
    "dbos": System("dbos_bench.py", "dbos==3.4.0", "dbos"),
    "pyworkflow": System("pyworkflow_bench.py", "pyworkflow-engine[sqlite]==0.4.0", "pyworkflow"),
    "pyorchestrate": System(
        "pyorchestrate_bench.py", "py-orchestrate==1.0.2", "py_orchestrate", python="3.12"
    ),
}


@dataclass(frozen=True)
class Row:
    workload: str
    label: str
    system: str
    mode: str = "default"
    compare_to: str = "durably"  # the row of the same workload this one is compared with


# metric key in the worker's JSON line, unit, whether higher is better
METRICS = {
    "W1": ("wf_per_s", "wf/s", True),
    "W2": ("us_per_step", "µs/step", False),
    "W3": ("seconds", "s", False),
    "W5": ("seconds", "s", False),
}

PEERS = [
    ("dbos", "dbos", "default"),
    ("pyworkflow", "pyworkflow", "default"),
    ("pyworkflow-1thread", "pyworkflow", "one-thread"),
    ("py-orchestrate", "pyorchestrate", "default"),
]
ROWS = [
    Row("W1", "durably", "durably", "sync", ""),
    Row("W1", "durably-async", "durably", "async"),
    Row("W1", "durably-async, starts gathered", "durably", "async-gather"),
    *(Row("W1", *peer) for peer in PEERS),
    Row("W2", "durably", "durably", "default", ""),
    Row("W2", "durably-full", "durably", "full", ""),
    Row("W2", "sqlite floor, no fsync", "sqlite", "normal", "durably"),
    Row("W2", "sqlite floor, fsync", "sqlite", "full", "durably-full"),
    *(Row("W2", *peer) for peer in PEERS),
    Row("W3", "durably", "durably", "default", ""),
    *(Row("W3", *peer) for peer in PEERS),
    Row("W5", "durably", "durably", "sync", ""),
    Row("W5", "durably-async", "durably", "async"),
    *(Row("W5", *peer) for peer in PEERS),
]


#: With --observe: durably with each kind of observability on, beside durably without.
OBSERVED = [
    Row(workload, f"durably + {label}", "durably", f"{mode}+{what}")
    for workload, mode in (("W1", "sync"), ("W2", "default"))
    for what, label in (
        ("nothing", "nothing (the pairing's own noise)"),
        ("logs", "INFO logs"),
        ("logs-dropped", "INFO logs, records dropped by the handler"),
        ("metrics", "metrics"),
        ("metrics-events", "metrics' events only, dropped (the engine's part)"),
        ("tracing", "tracing"),
        ("tracing-sampled", "tracing, one trace in ten sampled"),
        ("tracing-api", "tracing, API only (no SDK)"),
    )
]


class SetupError(Exception):
    pass


def find_python(version: str) -> str:
    """An interpreter of `version` (pyenv shims may exist without the version active)."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == version:
        return sys.executable
    candidates = [shutil.which(f"python{version}") or ""]
    pyenv = os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")
    candidates += sorted(glob(pyenv))
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return candidate
    raise SetupError(f"no working python{version} found")


def ensure_python(name: str) -> str:
    """The interpreter that runs `name`'s worker script, installing its venv if needed."""
    system = SYSTEMS[name]
    if name == "durably":
        venv_python = REPO / ".venv" / "bin" / "python"
        return str(venv_python) if venv_python.exists() else sys.executable
    if not system.requirement:
        return sys.executable
    venv = BENCH / ".venvs" / name
    python, marker = venv / "bin" / "python", venv / "bench-requirement.txt"
    check = [python, "-c", f"import {system.module}"]
    pinned = marker.exists() and marker.read_text() == system.requirement
    if pinned and subprocess.run(check, capture_output=True).returncode == 0:
        return str(python)
    shutil.rmtree(venv, ignore_errors=True)
    print(f"installing {system.requirement} into {venv} ...", file=sys.stderr)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    steps = [[find_python(system.python), "-m", "venv", str(venv)], [*pip, system.requirement]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise SetupError(f"install failed: {last_line(done.stderr)}")
    marker.write_text(system.requirement)
    return str(python)


def measure_once(python: str, row: Row) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"{row.system}-{row.workload}-", dir=BENCH / ".work"))
    script = BENCH / "systems" / SYSTEMS[row.system].script
    command = [python, str(script), row.workload, "--mode", row.mode, "--dir", str(workdir)]
    try:
        done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 900 s"}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if done.returncode != 0:
        return {"error": last_line(done.stderr) or f"exit code {done.returncode}"}
    try:
        return json_line(done.stdout)
    except ValueError as exc:
        return {"error": str(exc)}


def summarize(row: Row, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of the successful runs, with the failures counted in a note."""
    metric = METRICS[row.workload][0]
    good = [run for run in runs if "error" not in run]
    failed = [run for run in runs if "error" in run]
    if not good:
        last = failed[-1]
        return {"error": last["error"], "runs": runs, "executions": last.get("executions")}
    median = statistics.median(run[metric] for run in good)
    typical = min(good, key=lambda run: abs(run[metric] - median))
    result = {"value": median, "runs": runs, "typical": typical}
    paired = [run["paired_cost"] for run in good if "paired_cost" in run]
    if paired:
        result["paired_cost"] = statistics.median(paired)
        result["paired_range"] = (min(paired), max(paired))
    if failed:
        result["note"] = f"{len(failed)} of {len(runs)} runs failed: {failed[-1]['error'][:80]}"
    return result


def speedup(value: float, other: float, higher_better: bool) -> float:
    """How many times better `value` is than `other` (below 1: worse)."""
    return value / other if higher_better else other / value


def phrase(factor: float) -> str:
    if 0.95 <= factor <= 1.05:
        return "about even"
    return f"{factor:.1f}x faster" if factor > 1 else f"{1 / factor:.1f}x slower"


def comparison(row: Row, value: float, other: Row, other_value: float) -> str:
    higher_better = METRICS[row.workload][2]
    if row.system == "sqlite":  # compare_to names the durably row measured against this floor
        return f"{other.label} costs {other_value / value:.2f}x this floor"
    if row.system == "durably":
        text = phrase(speedup(value, other_value, higher_better))
        return f"{text} {'with' if text == 'about even' else 'than'} {other.label}"
    return f"durably is {phrase(speedup(other_value, value, higher_better))}"


def value_text(row: Row, result: dict[str, Any]) -> str:
    typical = result.get("typical", result)
    details = []
    if "in_process_s" in typical and "error" not in result:
        details.append(f"{typical['in_process_s']:.3f} s in process")
    if typical.get("executions"):
        details.append("executions " + "/".join(map(str, typical["executions"])))
    suffix = f" ({'; '.join(details)})" if details else ""
    if "error" in result:
        return f"error: {result['error'][:120]}{suffix}"
    note = f"; {result['note']}" if "note" in result else ""
    digits = 2 if row.workload in ("W3", "W5") else 0
    return f"{result['value']:,.{digits}f} {METRICS[row.workload][1]}{suffix}{note}"


def table(results: dict[Row, dict[str, Any]], rows: list[Row]) -> str:
    by_label = {(row.workload, row.label): row for row in rows}
    lines = ["| workload | system | median | comparison |", "|---|---|---|---|"]
    for row in rows:
        result, text = results[row], ""
        other = by_label.get((row.workload, row.compare_to))
        if "paired_cost" in result:
            low, high = result["paired_range"]
            text = (
                f"{result['paired_cost']:+.1%} time against durably without it, in the same"
                f" processes ({low:+.1%} to {high:+.1%})"
            )
        elif other and "value" in result and "value" in results[other]:
            text = comparison(row, result["value"], other, results[other]["value"])
            in_process = [r["typical"].get("in_process_s") for r in (result, results[other])]
            if row.system != "durably" and None not in in_process:
                text += f" (in process: {phrase(in_process[0] / in_process[1])})"
        lines.append(f"| {row.workload} | {row.label} | {value_text(row, result)} | {text} |")
    return "\n".join(lines)


def run_all(rows: list[Row], pythons: dict[str, Any], repeat: int) -> dict[Row, dict[str, Any]]:
    """Run every row `repeat` times, interleaving the rows of a workload so that the
    machine's drift (other load, disk latency) touches them all alike."""
    runs: dict[Row, list[dict[str, Any]]] = {row: [] for row in rows}
    for workload in dict.fromkeys(row.workload for row in rows):
        for i in range(repeat):
            for row in (row for row in rows if row.workload == workload):
                python = pythons[row.system]
                if isinstance(python, SetupError):
                    runs[row].append({"error": str(python)})
                    continue
                result = measure_once(python, row)
                runs[row].append(result)
                metric, unit, _ = METRICS[row.workload]
                shown = result.get("error") or f"{result[metric]:.4g} {unit}"
                print(f"  {workload} {row.label} [{i + 1}/{repeat}]: {shown}", file=sys.stderr)
    return {row: summarize(row, row_runs) for row, row_runs in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="W1,W2,W3,W5", help="workloads, comma-separated")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="systems, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median shown)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--observe", action="store_true", help="add rows with logs/metrics/traces")
    args = parser.parse_args()
    workloads, systems = args.only.split(","), args.systems.split(",")
    unknown = set(systems) - set(SYSTEMS) | set(workloads) - set(METRICS)
    if unknown:
        parser.error(f"unknown: {', '.join(sorted(unknown))}; systems are {', '.join(SYSTEMS)}")
    (BENCH / ".work").mkdir(exist_ok=True)
    candidates = ROWS + (OBSERVED if args.observe else [])
    rows = [row for row in candidates if row.workload in workloads and row.system in systems]
    order = list(METRICS)
    rows.sort(key=lambda row: order.index(row.workload))  # stable: a workload's rows together
    pythons: dict[str, str | SetupError] = {}
    for name in systems:
        try:
            pythons[name] = ensure_python(name)
        except (SetupError, subprocess.TimeoutExpired) as exc:
            pythons[name] = SetupError(str(exc))
    results = run_all(rows, pythons, args.repeat)
    print(f"\n{platform.platform()}, {os.cpu_count()} cores, medians of {args.repeat}\n")
    print(table(results, rows))
    if args.json:
        records = [{**row.__dict__, **results[row]} for row in rows]
        Path(args.json).write_text(json.dumps(records, indent=2))


if __name__ == "__main__":
    main()
