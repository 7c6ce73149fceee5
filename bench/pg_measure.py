"""One measurement of the PostgreSQL benchmark: fresh namespace, worker processes, a client.

Every measurement gets its own namespace on the server (durably: a schema of the
database `test`; DBOS and pyworkflow-engine: a database of their own), its own
worker processes started one after another (so no two run migrations at once), a
client process, and for a Celery system an empty Redis database (pg_systems.py says
how each system runs). The namespace, the Redis database and the processes are
removed when it ends, whatever happened.
Stdlib only: the system libraries run in the child processes.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pg_common
import pg_systems
from pg_common import read_marks, wait_until
from pg_systems import SYSTEMS, Setup

__all__ = ["Setup", "drop_leftovers", "measure", "psql", "recovery"]

BENCH = Path(__file__).resolve().parent
SERVER = "postgresql://postgres@127.0.0.1"
ADMIN_DB = "test"
PREFIX = "benchpg_"  # every schema and database this benchmark creates; dropped at the end
LEASE = 3  # seconds, durably's lease in the recovery measurement
PEER_WAIT = 20.0  # seconds to wait for a live DBOS process to take over a dead one's work


def psql(sql: str, db: str = ADMIN_DB) -> str:
    done = subprocess.run(
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", f"{SERVER}/{db}", "-c", sql],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"psql failed: {pg_common.last_line(done.stderr)}")
    return done.stdout


def drop_leftovers() -> None:
    """Remove namespaces an interrupted earlier run of this benchmark left behind."""
    for schema in psql(f"SELECT nspname FROM pg_namespace WHERE nspname LIKE '{PREFIX}%'").split():
        psql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    for db in psql(f"SELECT datname FROM pg_database WHERE datname LIKE '{PREFIX}%'").split():
        psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


@contextmanager
def namespace(system: str) -> Iterator[str]:
    """A fresh store URL for `system`, dropped on exit."""
    name = f"{PREFIX}{uuid.uuid4().hex[:10]}"
    if SYSTEMS[system].namespace == "schema":
        try:
            yield f"{SERVER}/{ADMIN_DB}?schema={name}"  # durably creates the schema
        finally:
            psql(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    else:
        psql(f"CREATE DATABASE {name}")
        try:
            yield f"{SERVER}/{name}"
        finally:
            psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class Worker:
    """A worker process of a system, its output in a log file, in a process group of its own."""

    def __init__(self, setup: Setup, system: str, url: str, work: Path, **env: str) -> None:
        self.system = system
        self.log = Path(tempfile.mkstemp(prefix=f"{system}-worker-", suffix=".log", dir=work)[1])
        environ = {
            **os.environ,
            "PG_BENCH_URL": url,
            "PG_BENCH_MARKS": str(work / "marks.txt"),
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(BENCH),
            **pg_systems.worker_env(system, url),
            **env,
        }
        command = pg_systems.worker_command(setup, system)
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(
                command,
                cwd=BENCH,
                env=environ,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its pool's children too end with the group
            )
        self.pid = self.process.pid
        try:
            wait_until(self._ready, 60, f"{system} worker to start")
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            tail = pg_common.last_line(self.log.read_text())
            raise RuntimeError(f"{self.system} worker exited {self.process.returncode}: {tail}")
        log = self.log.read_text()
        return all(line in log for line in SYSTEMS[self.system].ready)

    def kill(self) -> float:
        """SIGKILL the worker; returns the time it was sent."""
        sent = time.time()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        return sent

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(ProcessLookupError):  # a pool child its parent left behind
            os.killpg(self.pid, signal.SIGKILL)


def run_client(setup: Setup, system: str, action: str, url: str, work: Path) -> dict[str, Any]:
    command = [pg_systems.python(setup, system), str(BENCH / SYSTEMS[system].client)]
    done = subprocess.run(
        [*command, action, url, str(work / "marks.txt")],
        cwd=work,
        env={**os.environ, **pg_systems.client_env(system)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(pg_common.last_line(done.stderr) or f"client exited {done.returncode}")
    return pg_common.json_line(done.stdout)


def start_workers(
    stack: ExitStack, setup: Setup, system: str, url: str, work: Path, count: int, poll: float
) -> list[Worker]:
    workers = []
    for i in range(count):
        env = {"PG_BENCH_EXECUTOR": f"w{i}", "PG_BENCH_POLL": str(poll)}
        worker = Worker(setup, system, url, work, **env)
        stack.callback(worker.stop)
        workers.append(worker)
    time.sleep(0.5)  # let the workers' LISTEN connections and first polls settle
    return workers


def measure(setup: Setup, system: str, action: str, workers: int, poll: float) -> dict[str, Any]:
    """(a, d) `latency` or (b, e) `throughput`: workers already running, then the client."""
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pg-", dir=BENCH)))
        url = stack.enter_context(namespace(system))
        stack.enter_context(pg_systems.broker(system))
        prepared = run_client(setup, system, "init", url, work) if SYSTEMS[system].init else {}
        start_workers(stack, setup, system, url, work, workers, poll)
        result = run_client(setup, system, action, url, work)
        return {**result, "init": prepared} if prepared else result


# -- (c) recovery ------------------------------------------------------------------


def _slow_runs_started(work: Path, pid: int, step: int) -> bool:
    """Whether every slow run has begun `step` in process `pid`."""
    begun = {key for key, who, _t in read_marks(work / "marks.txt") if who == pid}
    return all(f"r{i}:{step}" in begun for i in range(pg_common.SLOW_RUNS))


def _resumed(work: Path, victim: int, after: float) -> dict[str, tuple[int, float]]:
    """Per slow run, the first step start after `after` in another process than `victim`."""
    first: dict[str, tuple[int, float]] = {}
    for key, pid, t in read_marks(work / "marks.txt"):
        run = key.split(":")[0]
        if pid != victim and t >= after and run not in first:
            first[run] = (pid, t)
    return first


def _random_pause() -> None:
    """Wait 0.5-1.5 s, so the kill lands at a random point of the peer's 1 s poll cycle
    and of the victim's lease renewals, not always at the same phase after start-up."""
    time.sleep(random.uniform(0.5, 1.5))


def _all_resumed(work: Path, victim: int, after: float) -> bool:
    return len(_resumed(work, victim, after)) == pg_common.SLOW_RUNS


def _finished(work: Path) -> tuple[bool, int]:
    """Whether every slow run began its last step, and how many step starts were repeats."""
    keys = [key for key, _pid, _t in read_marks(work / "marks.txt")]
    last = pg_common.SLOW_STEPS - 1
    done = all(f"r{i}:{last}" in keys for i in range(pg_common.SLOW_RUNS))
    return done, len(keys) - len(set(keys))


def _start_victim_runs(setup: Setup, system: str, url: str, work: Path, victim: Worker) -> None:
    run_client(setup, system, "slow", url, work)
    wait_until(lambda: _slow_runs_started(work, victim.pid, 1), 60, "the runs' second steps")


def recovery(setup: Setup, system: str, cross_host: bool = False) -> dict[str, Any]:
    """(c) SIGKILL the worker executing slow runs; time until another process continues them."""
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pg-", dir=BENCH)))
        url = stack.enter_context(namespace(system))
        if system == "dbos":
            return _dbos_recovery(stack, setup, url, work)
        elsewhere = {"PG_BENCH_HOSTNAME": "another-host"} if cross_host else {}
        victim = Worker(setup, system, url, work, PG_BENCH_LEASE=str(LEASE), **elsewhere)
        stack.callback(victim.stop)
        _start_victim_runs(setup, system, url, work, victim)
        peer = Worker(setup, system, url, work, PG_BENCH_LEASE=str(LEASE))
        stack.callback(peer.stop)
        _random_pause()
        killed = victim.kill()
        wait_until(lambda: _all_resumed(work, victim.pid, killed), 60, "a peer to resume the runs")
        delays = [t - killed for _pid, t in _resumed(work, victim.pid, killed).values()]
        wait_until(lambda: _finished(work)[0], 60, "the runs to finish")
        return {"seconds": max(delays), "first_s": min(delays), "repeats": _finished(work)[1]}


def _dbos_recovery(stack: ExitStack, setup: Setup, url: str, work: Path) -> dict[str, Any]:
    """DBOS: does a live peer continue a killed process's workflows? If not, restart it."""
    victim = Worker(setup, "dbos", url, work, PG_BENCH_EXECUTOR="victim")
    stack.callback(victim.stop)
    _start_victim_runs(setup, "dbos", url, work, victim)
    peer = Worker(setup, "dbos", url, work, PG_BENCH_EXECUTOR="peer")
    stack.callback(peer.stop)
    _random_pause()
    killed = victim.kill()
    everyone = functools.partial(_all_resumed, work, victim.pid, killed)
    try:
        wait_until(everyone, PEER_WAIT, "the live peer to resume the runs")
        peer_resumed, since = True, killed
    except TimeoutError:
        peer_resumed, since = False, time.time()
        restarted = Worker(setup, "dbos", url, work, PG_BENCH_EXECUTOR="victim")
        stack.callback(restarted.stop)
        wait_until(everyone, 60, "the restarted executor to resume every run")
    resumed = _resumed(work, victim.pid, killed)
    delays = [t - since for _pid, t in resumed.values()]
    by = {"peer" if pid == peer.pid else "restarted" for pid, _t in resumed.values()}
    wait_until(lambda: _finished(work)[0], 60, "the runs to finish")
    return {
        "peer_resumed": peer_resumed,
        "peer_wait_s": PEER_WAIT,
        "seconds": max(delays),
        "first_s": min(delays),
        "resumed_by": sorted(by),
        "repeats": _finished(work)[1],
    }
