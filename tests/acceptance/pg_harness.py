"""Harness of the PostgreSQL acceptance tests: a schema per test, worker processes, and
the verdict of the effect log (:mod:`tests.acceptance.effects`) against the journal.

Workers are real ``python -m durably.cli worker`` processes on the app
``tests.acceptance.pg_app:engine``; their output goes to files (a pipe nobody
reads could fill up and block a worker). Every worker connects with
``application_name`` set (``PGAPPNAME``) to the test's schema name, so a test can
kill exactly its own workers' connections and nobody else's.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

import durably
from tests.acceptance.effects import check_tokens, executions, read_effects
from tests.postgres import URL as POSTGRES_URL

REPO_ROOT = Path(__file__).resolve().parents[2]
APP = "tests.acceptance.pg_app:engine"


def postgres_available(patience: float = 20.0) -> bool:
    """Whether the test server answers (retrying a while: it may be restarting, or out
    of connections)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            with psycopg.connect(POSTGRES_URL, connect_timeout=3):
                return True
        except psycopg.Error:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)


def connect(patience: float = 30.0) -> psycopg.Connection[Any]:
    """A connection of the test's own. The test server is shared: when it is out of
    connections for a moment ("too many clients"), wait rather than fail."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# -- one schema per test ------------------------------------------------------------------
@dataclass
class Schema:
    """A test's own schema in the test database, and the URL that selects it."""

    name: str
    workdir: Path

    @property
    def url(self) -> str:
        return f"{POSTGRES_URL}?schema={self.name}"

    @property
    def effects(self) -> Path:
        return self.workdir / "effects.log"

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Read with a connection of the test's own (never one of the workers')."""
        with connect() as conn:
            conn.execute(f"SET search_path TO {self.name}")
            return conn.execute(sql, params).fetchall()

    def client(self, **options: Any) -> durably.Engine:
        """An engine that starts runs by name and reads them, executing nothing."""
        return durably.Engine(self.url, execute=False, **options)

    def runs(self) -> dict[str, dict[str, Any]]:
        cols = ("run_id", "workflow", "status", "output", "owner", "epoch", "attempts", "queue")
        rows = self.query(f"SELECT {', '.join(cols)} FROM runs")
        return {r[0]: dict(zip(cols, r, strict=True)) for r in rows}

    def journal(self) -> dict[str, list[tuple[int, str, str, str | None]]]:
        """Per run: (seq, name, status, output) of every journal entry, in order."""
        out: dict[str, list[tuple[int, str, str, str | None]]] = defaultdict(list)
        for run_id, seq, name, status, output in self.query(
            "SELECT run_id, seq, name, status, output FROM journal ORDER BY run_id, seq"
        ):
            out[run_id].append((seq, name, status, output))
        return out


def terminate_workers(schema: Schema, conn: psycopg.Connection[Any] | None = None) -> int:
    """Kill every backend of this test's workers (by application_name); return how many."""
    sql = (
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = %s AND pid <> pg_backend_pid()"
    )
    if conn is None:
        with connect() as own:
            return int(own.execute(sql, (schema.name,)).fetchone()[0])  # type: ignore[index]
    return int(conn.execute(sql, (schema.name,)).fetchone()[0])  # type: ignore[index]


# -- worker processes ---------------------------------------------------------------------
def worker_env(schema: Schema, **settings: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PGT_", "DURABLY_CRASH"))}
    env["PYTHONPATH"] = ":".join(
        [str(REPO_ROOT), str(REPO_ROOT / "src"), *filter(None, [env.get("PYTHONPATH")])]
    )
    env["PGAPPNAME"] = schema.name
    env["PGT_URL"] = schema.url
    env["PGT_EFFECTS"] = str(schema.effects)
    for key, value in settings.items():
        env[f"PGT_{key.upper()}"] = str(value)
    return env


class Worker:
    """One ``durably worker`` process on the test's schema."""

    _count = 0

    def __init__(
        self, schema: Schema, *cli_args: str, name: str | None = None, **settings: Any
    ) -> None:
        Worker._count += 1
        self.name = name or f"w{Worker._count}"
        self.out_path = schema.workdir / f"{self.name}-{Worker._count}.out"
        self.err_path = schema.workdir / f"{self.name}-{Worker._count}.err"
        self.args = [sys.executable, "-m", "durably.cli", "worker", "--app", APP, *cli_args]
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(
                self.args, env=worker_env(schema, **settings), stdout=out, stderr=err
            )
        self.pid = self.proc.pid
        self.started = time.time()

    def __repr__(self) -> str:
        return f"<Worker {self.name} pid {self.pid}>"

    @property
    def stdout(self) -> str:
        return self.out_path.read_text()

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()

    def describe(self) -> str:
        return (
            f"worker {self.name} pid {self.pid} exit {self.proc.returncode}\n"
            f"--- stdout ---\n{self.stdout[-2000:]}\n--- stderr ---\n{self.stderr[-4000:]}"
        )

    def wait_ready(self, timeout: float = 30) -> Worker:
        """Wait until the worker's executor runs (it prints its banner then)."""
        deadline = time.monotonic() + timeout
        while "durably worker pid" not in self.stdout:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker died while starting\n{self.describe()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker not ready in {timeout}s\n{self.describe()}")
            time.sleep(0.02)
        return self

    def signal(self, sig: int) -> float:
        """Send ``sig``; return the time it was sent."""
        sent = time.time()
        os.kill(self.pid, sig)
        return sent

    def kill(self) -> float:
        """SIGKILL and reap at once (a zombie's pid would still look alive)."""
        sent = self.signal(signal.SIGKILL)
        self.proc.wait(10)
        return sent

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def cpu_seconds(self) -> float:
        """User + system CPU time the process used so far (from /proc)."""
        return cpu_seconds(self.pid)

    def stop(self) -> None:
        """End the process whatever its state (SIGCONT first, in case it is stopped)."""
        if self.proc.poll() is None:
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(self.pid, sig)
                except ProcessLookupError:
                    break
            self.proc.wait(10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time process ``pid`` used so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_cpu_seconds(schema: Schema) -> float:
    """CPU time used so far by the server processes serving this test's workers (the
    server runs on this machine in the test setup; 0 where /proc does not show them)."""
    rows = schema.query(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (schema.name,)
    )
    return sum(cpu_seconds(pid) for (pid,) in rows)


def clean_stderr(worker: Worker, allowed: Iterable[str] = ()) -> list[str]:
    """Lines of the worker's stderr that look like errors, minus the allowed ones."""
    words = ("Traceback", "Error", "ERROR", "Exception")
    return [
        line
        for line in worker.stderr.splitlines()
        if any(w in line for w in words) and not any(a in line for a in allowed)
    ]


# -- the verdict ---------------------------------------------------------------------
@dataclass
class Verdict:
    """What the journal and the effect log say about a set of runs."""

    problems: list[str] = field(default_factory=list)
    reruns: list[tuple[str, str, list[int]]] = field(default_factory=list)  # (run, step, pids)


def check_steps(
    schema: Schema,
    expected_steps: Mapping[str, Sequence[str]],
    killed: set[int] = frozenset(),  # type: ignore[assignment]
) -> Verdict:
    """G1 and G2 for runs whose steps return their execution's token.

    G1: each run completed, its journal holds exactly its steps, completed, once.
    G2: each step body ran at least once; the committed token is one that ran;
    no execution of a step began after the one that committed it began (a commit
    needs the lease held since the claim, so a later start means a re-run after the
    checkpoint); and every superseded execution was by a process that was killed
    or lost its lease (``killed``: pids allowed to have lost work).
    """
    import json

    verdict = Verdict()
    runs, journals, runs_exec = (
        schema.runs(),
        schema.journal(),
        executions(read_effects(schema.effects)),
    )
    for run_id, steps in expected_steps.items():
        run = runs.get(run_id)
        if run is None:
            verdict.problems.append(f"run {run_id}: missing")
            continue
        if run["status"] != "completed":
            verdict.problems.append(f"run {run_id}: {run['status']} (owner {run['owner']})")
            continue
        journal = journals.get(run_id, [])
        if [j[0] for j in journal] != list(range(len(steps))):
            verdict.problems.append(f"run {run_id}: journal positions {[j[0] for j in journal]}")
            continue
        output = json.loads(run["output"])
        committed = [json.loads(j[3]) if j[3] else None for j in journal]
        if output != committed:
            verdict.problems.append(f"run {run_id}: output {output} != checkpoints {committed}")
        for step, token, entry in zip(steps, committed, journal, strict=True):
            if entry[2] != "completed":
                verdict.problems.append(f"run {run_id} {step}: journal status {entry[2]}")
            runs_of_step = runs_exec.get((run_id, step), [])
            verdict.problems += check_tokens(run_id, step, str(token), runs_of_step, killed)
            if len(runs_of_step) > 1:
                verdict.reruns.append((run_id, step, [x.pid for x in runs_of_step]))
    return verdict


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def wait_all_terminal(schema: Schema, run_ids: Iterable[str], timeout: float) -> None:
    ids = set(run_ids)

    def done() -> bool:
        runs = schema.runs()
        return all(r in runs and runs[r]["status"] in ("completed", "failed") for r in ids)

    try:
        wait_until(done, timeout, f"{len(ids)} runs to end", interval=0.2)
    except AssertionError:
        runs = schema.runs()
        stuck = [runs.get(r, {"run_id": r, "status": "missing"}) for r in sorted(ids)]
        stuck = [r for r in stuck if r["status"] not in ("completed", "failed")]
        raise AssertionError(
            f"{len(stuck)} runs not ended (stuck-run detector): {stuck[:10]}"
        ) from None


def max_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """The largest number of intervals open at one moment (an end before a start at a tie)."""
    spans = list(intervals)
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = current = 0
    for _, delta in points:
        current += delta
        best = max(best, current)
    return best


# -- the server itself --------------------------------------------------------------------
def local_cluster() -> tuple[str, str] | None:
    """(version, name) of the local cluster serving the tests, if pg_ctlcluster manages it
    (the one listening on the test URL's port)."""
    if shutil.which("pg_ctlcluster") is None or shutil.which("pg_lsclusters") is None:
        return None
    port = str(urlsplit(POSTGRES_URL).port or 5432)
    listing = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=False
    ).stdout
    for line in listing.splitlines():
        version, name, cluster_port, *_ = line.split()
        if cluster_port == port:
            return version, name
    return None


def restart_server(cluster: tuple[str, str]) -> float:
    """Restart the PostgreSQL server; how long it took."""
    began = time.monotonic()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, "restart"],
        check=True,
        timeout=120,
        capture_output=True,
    )
    return time.monotonic() - began


def ensure_up(cluster: tuple[str, str]) -> None:
    if not postgres_available(patience=5):
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, "start"],
            check=False,
            timeout=60,
        )
    assert postgres_available(patience=30), "PostgreSQL did not come back"
