"""Databases written by an older durably keep working: their runs finish under this code.

``data/schema-v4.*`` were written by durably with schema version 4 (see
``data/write_fixtures.py``): runs sleeping, waiting for a signal, mid-retry, a
parent waiting for its child, a buffered signal and a completed run. Opening them
migrates the schema to the newest version; every run then finishes.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

import durably
from durably.stores.sql import schema
from tests import postgres

DATA = Path(__file__).parent / "data"
FIXTURE_SCHEMA = "durably_fixture"


@durably.step
def first(name: str) -> str:
    return f"first:{name}"


@durably.step(retries=2)
def flaky(name: str) -> str:
    return "recovered"  # the old process's attempt failed; this one succeeds


@durably.workflow(name="upgrade.sleeper")
def sleeper(name: str) -> str:
    a = first(name)
    durably.sleep("2s")
    return f"{a}|slept"


@durably.workflow(name="upgrade.waiter")
def waiter(name: str) -> str:
    a = first(name)
    got = durably.wait_for_signal("go")
    return f"{a}|{got}"


@durably.workflow(name="upgrade.retrier")
def retrier(name: str) -> str:
    return f"{first(name)}|{flaky(name)}"


@durably.workflow(name="upgrade.child")
def child(name: str) -> str:
    return f"child:{durably.wait_for_signal('go')}"


@durably.workflow(name="upgrade.parent")
def parent(name: str) -> str:
    handle = durably.start_child(child, name)
    return f"parent|{handle.result()}"


@durably.workflow(name="upgrade.done")
def done(name: str) -> str:
    return first(name)


EXPECTED = {
    "upgrade.sleeper": "first:upgrade.sleeper|slept",
    "upgrade.waiter": "first:upgrade.waiter|now",
    "upgrade.retrier": "first:upgrade.retrier|recovered",
    "upgrade.parent": "parent|child:now",
    "upgrade.done": "first:upgrade.done",
}


@pytest.fixture(params=["sqlite", "postgres"])
def old_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A copy of the version-4 database of each backend."""
    if request.param == "sqlite":
        path = tmp_path / "old.sqlite"
        shutil.copy(DATA / "schema-v4.sqlite", path)
        yield str(path)
        return
    name = postgres.new_schema("up")
    dump = (DATA / "schema-v4.postgresql.sql").read_text()
    with postgres.connect() as conn:
        conn.execute(dump.replace(FIXTURE_SCHEMA, name).encode())
    yield postgres.schema_url(name)
    postgres.drop_schema(name)


def _version(url: str) -> int:
    if "://" not in url:
        with sqlite3.connect(url) as conn:
            return int(conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0])
    name = url.rsplit("schema=", 1)[1]
    with postgres.connect() as conn:
        row = conn.execute(f"SELECT MAX(version) FROM {name}.schema_version").fetchone()
        return int(row[0])


def test_runs_of_an_older_schema_finish(old_store: str) -> None:
    assert _version(old_store) == 4
    with durably.Engine(old_store, poll_interval=0.05) as engine:
        assert _version(old_store) == schema.latest()
        assert engine.get_run("upgrade.done").output == "first:upgrade.done"
        engine.send_signal("upgrade.waiter", "go", "now")
        engine.send_signal("upgrade.parent.0", "go", "now")
        results = {run_id: engine.handle(run_id).result(timeout=30) for run_id in EXPECTED}
        assert results == EXPECTED
        # Nothing recorded before the upgrade ran again: "first" kept its one attempt.
        for run_id in EXPECTED:
            firsts = [s for s in engine.steps(run_id) if s.name.endswith("first")]
            assert [s.attempts for s in firsts] == ([1] if run_id != "upgrade.parent" else [])
        retried = [s for s in engine.steps("upgrade.retrier") if s.name.endswith("flaky")]
        assert [(s.status, s.attempts) for s in retried] == [("completed", 2)]
