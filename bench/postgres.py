"""durably on PostgreSQL, beside DBOS and pyworkflow-engine on the same server; prints a table.

    python bench/postgres.py [--only a,b,c,d,e] [--repeat 3] [--json out.json]

(a) enqueue -> first step starts: a client process starts runs one at a time
    (20 ms apart) while a worker process executes them; median and p99.
(b) throughput: 1,000 workflows of 3 trivial steps enqueued by a client, with 1, 2
    and 4 worker processes already running; workflows/s until the last completed.
(c) recovery: SIGKILL the worker executing long runs (steps of 0.5 s); seconds until
    another process continues them.
(d) as (a), on Celery: durably's own worker beside durably over Celery
    (durably.contrib.celery.CeleryTransport, one `celery worker -P prefork -c 1`) and
    pyworkflow-engine 0.4.0 on Celery + Redis.
(e) as (b) for the same three, with 1, 2 and 4 worker processes (Celery: that many
    `celery worker -P prefork -c 1` commands).

Needs PostgreSQL at postgresql://postgres@127.0.0.1 (trust auth) and psql; d and e also
Redis at 127.0.0.1:6379 and redis-cli (databases 5 and 6, flushed). durably runs with
this repository's .venv; DBOS with bench/.venvs/dbos (created by run.py's installer
if missing); pyworkflow-engine with bench/.venvs/pyworkflow (its postgres and redis
extras added if missing), on its PostgresStorageBackend. Every measurement uses a
fresh schema (durably) or database (DBOS, pyworkflow-engine) named benchpg_*,
dropped afterwards. Stdlib only; see bench/POSTGRES.md and pg_systems.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pg_common
import pg_measure
import pg_systems
import run  # bench/run.py: installs the DBOS venv if it is missing
from pg_systems import NOTES, Setup

BENCH = Path(__file__).resolve().parent

FAST_POLL = 0.1  # a DBOS queue polling interval tuned for latency, next to its default 1 s


@dataclass(frozen=True)
class Row:
    measure: str  # a | b | c | d | e
    label: str
    system: str  # durably | dbos | durably-celery | pyworkflow (see pg_systems.SYSTEMS)
    workers: int = 1
    poll: float = 1.0  # DBOS queue polling_interval_sec
    cross_host: bool = False  # c: the peer cannot see the dead worker's pid

    def run_once(self, setup: Setup) -> dict[str, Any]:
        if self.measure == "c":
            return pg_measure.recovery(setup, self.system, self.cross_host)
        action = "latency" if self.measure in LATENCY else "throughput"
        return pg_measure.measure(setup, self.system, action, self.workers, self.poll)


# metric key, unit, whether higher is better
METRICS = {
    "a": ("median_ms", "ms", False),
    "b": ("wf_per_s", "wf/s", True),
    "c": ("seconds", "s", False),
    "d": ("median_ms", "ms", False),
    "e": ("wf_per_s", "wf/s", True),
}
LATENCY, THROUGHPUT = ("a", "d"), ("b", "e")
#: The systems a row's comparison column measures it against, in this order.
COMPARED_WITH = {"durably": ("dbos",), "durably-celery": ("pyworkflow", "durably")}
DBOS_FAST = f"dbos, poll {FAST_POLL:g} s"
CELERY_ROWS = (
    ("durably worker", "durably"),
    ("durably over Celery", "durably-celery"),
    ("pyworkflow-engine on Celery", "pyworkflow"),
)
ROWS = [
    Row("a", "durably", "durably"),
    Row("a", "dbos", "dbos"),
    Row("a", DBOS_FAST, "dbos", poll=FAST_POLL),
    *(
        Row("b", label, system, workers, poll)
        for workers in (1, 2, 4)
        for label, system, poll in (
            ("durably", "durably", 1.0),
            ("dbos", "dbos", 1.0),
            (DBOS_FAST, "dbos", FAST_POLL),
        )
    ),
    Row("c", "durably, peer on the same host", "durably"),
    Row("c", "durably, peer on another host (simulated)", "durably", cross_host=True),
    Row("c", "dbos", "dbos"),
    *(Row("d", label, system) for label, system in CELERY_ROWS),
    *(Row("e", label, system, workers) for workers in (1, 2, 4) for label, system in CELERY_ROWS),
]


def summarize(row: Row, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the successful runs; failures are counted in a note."""
    good = [r for r in runs if "error" not in r]
    failed = [r for r in runs if "error" in r]
    if not good:
        return {"error": failed[-1]["error"], "runs": runs}
    numeric = {
        k for k, v in good[0].items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
    result: dict[str, Any] = {k: statistics.median(r[k] for r in good) for k in numeric}
    metric = METRICS[row.measure][0]
    result["typical"] = min(good, key=lambda r: abs(r[metric] - result[metric]))
    result["runs"] = runs
    if failed:
        result["note"] = f"{len(failed)} of {len(runs)} runs failed: {failed[-1]['error'][:80]}"
    return result


def factor_text(mine: float, theirs: float, higher_better: bool) -> str:
    factor = mine / theirs if higher_better else theirs / mine
    if 0.95 <= factor <= 1.05:
        return "about even"
    return f"{factor:.1f}x faster" if factor > 1 else f"{1 / factor:.1f}x slower"


ARRIVALS = 1 / pg_common.LATENCY_SPACING  # starts per second in a latency measurement


def saturated(result: dict[str, Any]) -> bool:
    """Whether a latency run's first steps fell behind its starts (its latencies then
    measure a growing queue more than the path of one run)."""
    return result.get("steps_per_s", ARRIVALS) < 0.9 * ARRIVALS


def value_text(row: Row, result: dict[str, Any]) -> str:
    if "error" in result:
        return f"error: {result['error'][:100]}"
    typical = result["typical"]
    if row.measure in LATENCY:
        text = f"{result['median_ms']:.1f} ms (p99 {result['p99_ms']:.1f} ms)"
        if result.get("repeats"):
            text += f", {result['repeats']:.0f} step(s) began twice"
        if saturated(result):
            text += (
                f"; saturated: first steps began at {result['steps_per_s']:.0f}/s against "
                f"{ARRIVALS:.0f} starts/s, so the queue grew during the run"
            )
    elif row.measure in THROUGHPUT:
        rate = result["wf_per_s"]
        text = f"{rate:,.{0 if rate >= 10 else 1}f} wf/s (enqueue {result['enqueue_s']:.2f} s)"
        if typical.get("by_worker") and row.workers > 1:
            text += ", runs per process " + "/".join(map(str, typical["by_worker"].values()))
    elif row.system == "dbos":
        peer_wait = f"{typical['peer_wait_s']:g} s"
        if typical["peer_resumed"]:
            text = f"{result['seconds']:.2f} s, by the live peer"
        else:
            text = (
                f"live peer: nothing in {peer_wait}; restarting the killed executor id: "
                f"{result['seconds']:.2f} s from the restart (all runs; first "
                f"{result['first_s']:.2f} s; continued by {' and '.join(typical['resumed_by'])})"
            )
    else:
        text = f"{result['seconds']:.2f} s (all runs; first {result['first_s']:.2f} s)"
    if row.measure == "c":
        text += f", {result['repeats']:.0f} step(s) ran twice"
    return text + (f"; {result['note']}" if "note" in result else "")


def comparison(row: Row, results: dict[Row, dict[str, Any]]) -> str:
    """The row's ratio to each row of the systems COMPARED_WITH names for it (durably: DBOS;
    durably over Celery: pyworkflow-engine, then durably's own workers), of the same
    measure and worker count."""
    if "error" in results.get(row, {"error": ""}):
        return ""
    mine = results[row]
    metric, _unit, higher_better = METRICS[row.measure]
    texts = []
    peers = [p for system in COMPARED_WITH.get(row.system, ()) for p in ROWS if p.system == system]
    for peer in peers:
        theirs = results.get(peer, {})
        same = peer.measure == row.measure and peer.workers == row.workers
        if not same or not theirs or "error" in theirs:
            continue
        if row.measure == "c" and not theirs["typical"]["peer_resumed"]:
            # No ratio: a live DBOS process never resumes the work; it waits for a restart.
            texts.append(
                "dbos: a live peer does not resume the runs; a restart of the killed one does"
            )
        else:
            text = f"{factor_text(mine[metric], theirs[metric], higher_better)} than {peer.label}"
            if row.measure in LATENCY and saturated(theirs) and not saturated(mine):
                text += " (which did not keep up with the starts)"
            texts.append(text)
    return "; ".join(texts)


def table(results: dict[Row, dict[str, Any]]) -> str:
    lines = ["| measure | system | workers | median | comparison |", "|---|---|---|---|---|"]
    for row, result in results.items():
        cells = [row.measure, row.label, str(row.workers if row.measure != "c" else 2)]
        cells += [value_text(row, result), comparison(row, results)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_all(
    rows: list[Row], setup: Setup, repeat: int, report: Callable[[str], None]
) -> dict[Row, dict[str, Any]]:
    """Every row `repeat` times, the rows of one measure interleaved so drift touches all alike."""
    runs: dict[Row, list[dict[str, Any]]] = {row: [] for row in rows}
    for measure in dict.fromkeys(row.measure for row in rows):
        for i in range(repeat):
            for row in (r for r in rows if r.measure == measure):
                load = os.getloadavg()[0]
                try:
                    result = row.run_once(setup)
                except Exception as exc:  # one failed measurement must not end the others
                    result = {"error": f"{type(exc).__name__}: {exc}"}
                result["load"] = load  # the machine's 1-minute load average before the run
                runs[row].append(result)
                metric, unit, _ = METRICS[measure]
                shown = result.get("error") or f"{result[metric]:.4g} {unit}"
                where = f"({measure}) {row.label}, {row.workers} worker(s)"
                report(f"  {where} [{i + 1}/{repeat}]: {shown}")
    return {row: summarize(row, row_runs) for row, row_runs in runs.items()}


def server_settings() -> str:
    version = pg_measure.psql("SHOW server_version").strip()
    fsync = pg_measure.psql("SHOW fsync").strip()
    sync = pg_measure.psql("SHOW synchronous_commit").strip()
    return f"PostgreSQL {version} (fsync={fsync}, synchronous_commit={sync})"


def ensure_pyworkflow() -> str:
    """bench/.venvs/pyworkflow (run.py's installer makes it), with the extras used here."""
    venv_python = BENCH / ".venvs" / "pyworkflow" / "bin" / "python"
    python = str(venv_python) if venv_python.exists() else run.ensure_python("pyworkflow")
    check = [python, "-c", "import pyworkflow.storage.postgres, kombu.transport.redis"]
    if subprocess.run(check, capture_output=True).returncode != 0:
        print(f"installing {pg_systems.PYWORKFLOW_REQUIREMENT} ...", file=sys.stderr)
        pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        # kombu's Redis transport imports packaging, which kombu does not require
        install = [*pip, pg_systems.PYWORKFLOW_REQUIREMENT, "packaging"]
        done = subprocess.run(install, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise run.SetupError(f"install failed: {run.last_line(done.stderr)}")
    return python


def make_setup(systems: set[str]) -> Setup:
    """The interpreters of the systems that have rows; a failed install is said in their rows."""
    durably_python = BENCH.parent / ".venv" / "bin" / "python"
    setup = Setup(str(durably_python) if durably_python.exists() else sys.executable, "")
    for name, install in (
        ("dbos", lambda: run.ensure_python("dbos")),
        ("pyworkflow", ensure_pyworkflow),
    ):
        if name in systems:
            try:
                setattr(setup, f"{name}_python", install())
            except (run.SetupError, OSError, subprocess.SubprocessError) as exc:
                setup.unavailable[name] = str(exc)
    return setup


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="a,b,c", help="measures, comma-separated (a,b,c,d,e)")
    everyone = ",".join(pg_systems.SYSTEMS)
    parser.add_argument(
        "--systems", default=everyone, help=f"systems, comma-separated ({everyone})"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (median shown)")
    parser.add_argument("--json", help="also write every run's numbers to this file")
    args = parser.parse_args()
    measures, systems = args.only.split(","), args.systems.split(",")
    unknown = set(measures) - set(METRICS) | set(systems) - set(pg_systems.SYSTEMS)
    if unknown:
        parser.error(f"unknown: {', '.join(sorted(unknown))}")
    rows = [row for row in ROWS if row.measure in measures and row.system in systems]
    setup = make_setup({row.system for row in rows})
    pg_measure.drop_leftovers()
    try:
        results = run_all(rows, setup, args.repeat, lambda line: print(line, file=sys.stderr))
    finally:
        pg_measure.drop_leftovers()
    loads = [r["load"] for result in results.values() for r in result["runs"]]
    print(
        f"\n{platform.platform()}, {os.cpu_count()} cores, {server_settings()}, "
        f"medians of {args.repeat}; load average before a run: median "
        f"{statistics.median(loads):.1f}, max {max(loads):.1f}\n"
    )
    print(table(results))
    notes = [NOTES[name] for name in dict.fromkeys(row.system for row in rows) if name in NOTES]
    if notes:
        print("\n" + "\n".join(f"- {note}" for note in notes))
    if args.json:
        records = [{**row.__dict__, **result} for row, result in results.items()]
        Path(args.json).write_text(json.dumps(records, indent=2))


if __name__ == "__main__":
    main()
