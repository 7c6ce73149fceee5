"""Schedules fired by a fleet of real worker processes, with no leader: 4 workers race on
1,000 ticks and start exactly 1,000 runs; a worker SIGKILLed between deciding a tick
and telling anyone (or before its commit) leaves the tick to run exactly once; killed
database connections change nothing. On SQLite (one file) and PostgreSQL."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import durably
from durably import crashpoints
from durably.schedules import tick_run_id
from tests import postgres
from tests.acceptance import sched_app
from tests.acceptance.pg_harness import ensure_up, local_cluster, restart_server

REPO = Path(__file__).resolve().parents[2]
SCHEDULES, TICKS, EVERY = 50, 20, 0.5  # 1,000 ticks over 10 s


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "fleet.db")
        return
    postgres.require()
    schema = postgres.new_schema()
    yield postgres.schema_url(schema) + "&application_name=" + schema
    postgres.drop_schema(schema)


def worker(url: str, effects: Path, crash_at: str | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLY_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "src")])
    env["SCHED_EFFECTS"] = str(effects)
    if crash_at:
        env["DURABLY_CRASH_AT"] = crash_at
    command = [sys.executable, "-m", "durably", "worker", "--app", "tests.acceptance.sched_app"]
    return subprocess.Popen(
        [*command, "--store", url], env=env, cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def stop(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.communicate(timeout=30)


def wait_completed(client: durably.Engine, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while client.count_runs(workflow="sched.race", status="completed") < count:
        assert time.monotonic() < deadline, "the ticks' runs did not all complete"
        time.sleep(0.2)


def effects_of(path: Path) -> Counter[str]:
    return Counter(line.split()[0] for line in path.read_text().splitlines())


def test_four_workers_race_on_a_thousand_ticks(url: str, tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    os.environ["SCHED_EFFECTS"] = str(effects)  # sched_app registers here: a known workflow
    assert sched_app.race.name == "sched.race"
    first = math.ceil(time.time()) + 5.0  # after the workers started
    expected = set()
    with durably.Engine(url, execute=False) as client:
        for i in range(SCHEDULES):
            client.schedules.create(
                f"race-{i}", "sched.race", every=EVERY, overlap="allow_all", catchup="all",
                start_at=first, end_at=first + EVERY * (TICKS - 1),
            )  # fmt: skip
            expected |= {tick_run_id(f"race-{i}", first + EVERY * k) for k in range(TICKS)}
        procs = [worker(url, effects) for _ in range(4)]
        try:
            if url.startswith("postgresql"):  # connections killed mid-race: nothing changes
                time.sleep(first + 4 - time.time())
                assert postgres_kill(url) > 0
            wait_completed(client, SCHEDULES * TICKS, timeout=120)
        finally:
            stop(procs)
        runs = client.list_runs(workflow="sched.race", limit=5000)
        assert {r.run_id for r in runs} == expected  # none doubled, none missing
        ran = effects_of(effects)
        assert set(ran) == expected and set(ran.values()) == {1}
        for schedule in client.schedules.list():
            assert schedule.counts == {"started": TICKS, "skipped": 0, "buffered": 0, "missed": 0}
            assert schedule.next_tick is None  # past end_at: done
    for proc in procs:
        assert proc.returncode == 0, proc.stderr


def postgres_kill(url: str) -> int:
    """Terminate every connection of this test's workers (their application_name)."""
    import psycopg

    name = url.rsplit("application_name=", 1)[1]
    with psycopg.connect(postgres.URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize("point", crashpoints.SCHEDULE_POINTS)
def test_a_worker_killed_at_a_tick_leaves_it_to_run_once(
    url: str, tmp_path: Path, point: str
) -> None:
    effects = tmp_path / "effects.log"
    os.environ["SCHED_EFFECTS"] = str(effects)
    first = math.ceil(time.time()) + 3.0
    with durably.Engine(url, execute=False) as client:
        client.schedules.create(
            "crash", "sched.race", every="1s", catchup="all", overlap="allow_all",
            start_at=first, end_at=first + 2,
        )  # fmt: skip
        doomed = worker(url, effects, crash_at=point)
        doomed.communicate(timeout=60)
        assert doomed.returncode == -signal.SIGKILL
        fresh = worker(url, effects)
        try:
            wait_completed(client, 3, timeout=60)
        finally:
            stop([fresh])
        expected = {tick_run_id("crash", first + k) for k in range(3)}
        assert {r.run_id for r in client.list_runs(workflow="sched.race")} == expected
        ran = effects_of(effects)
        assert set(ran) == expected and set(ran.values()) == {1}


@pytest.mark.slow
def test_a_server_restart_during_ticks_loses_and_doubles_nothing(tmp_path: Path) -> None:
    cluster = local_cluster()
    if cluster is None:
        pytest.skip("pg_ctlcluster does not manage the test PostgreSQL: cannot restart it")
    postgres.require()
    schema = postgres.new_schema()
    url = postgres.schema_url(schema)
    effects = tmp_path / "effects.log"
    os.environ["SCHED_EFFECTS"] = str(effects)
    first, count, ticks = math.ceil(time.time()) + 4.0, 10, 20
    try:
        with durably.Engine(url, execute=False) as client:
            for i in range(count):
                client.schedules.create(
                    f"r{i}", "sched.race", every=EVERY, overlap="allow_all", catchup="all",
                    start_at=first, end_at=first + EVERY * (ticks - 1),
                )  # fmt: skip
        procs = [worker(url, effects) for _ in range(2)]
        try:
            time.sleep(first + 3 - time.time())
            restart_server(cluster)  # mid-way through the ticks
            with durably.Engine(url, execute=False) as client:
                wait_completed(client, count * ticks, timeout=120)
                runs = {r.run_id for r in client.list_runs(workflow="sched.race", limit=500)}
        finally:
            stop(procs)
        expected = {
            tick_run_id(f"r{i}", first + EVERY * k) for i in range(count) for k in range(ticks)
        }
        assert runs == expected
        ran = effects_of(effects)
        assert set(ran) == expected and set(ran.values()) == {1}
    finally:
        ensure_up(cluster)
        postgres.drop_schema(schema)
