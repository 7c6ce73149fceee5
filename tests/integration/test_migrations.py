"""Migrations: every migration applied in turn gives the fresh install's schema (read back
from the database's catalog); concurrent migrators leave one version; a current schema
takes no lock."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from durably.stores.sql import schema
from durably.stores.sqlite import SQLiteStore
from tests import postgres

Shape = dict[str, list[tuple[object, ...]]]


def sqlite_shape(path: Path) -> Shape:
    """Tables, columns, indexes (with their columns and partial flag) and table options."""
    with sqlite3.connect(path) as conn:
        shape: Shape = {}
        objects = conn.execute(
            "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
        for kind, name in objects:
            if kind != "table":
                continue
            shape[name] = list(conn.execute(f"PRAGMA table_xinfo({name})"))
            # WITHOUT ROWID tables have no rowid to select.
            try:
                conn.execute(f"SELECT rowid FROM {name} LIMIT 0")
                shape[name].append(("rowid",))
            except sqlite3.OperationalError:
                shape[name].append(("without rowid",))
            for index in sorted(conn.execute(f"PRAGMA index_list({name})"), key=lambda r: r[1]):
                columns = [r[2] for r in conn.execute(f"PRAGMA index_xinfo({index[1]})")]
                shape[name].append((index[1], index[2], index[3], index[4], *columns))
        return shape


def postgres_shape(name: str) -> Shape:
    """Columns, constraints, indexes, triggers and functions, as the catalog states them."""
    with postgres.connect() as conn:
        shape: Shape = {}
        for table, *column in conn.execute(
            "SELECT table_name, ordinal_position, column_name, data_type, is_nullable, "
            "column_default, is_identity FROM information_schema.columns "
            "WHERE table_schema = %s ORDER BY table_name, ordinal_position",
            (name,),
        ):
            shape.setdefault(table, []).append(tuple(column))
        queries = {
            "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE connamespace = %s::regnamespace ORDER BY 1, 2",
            "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes "
            "WHERE schemaname = %s ORDER BY 1, 2",
            "triggers": "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) "
            "FROM pg_trigger WHERE NOT tgisinternal AND tgrelid::regclass::text LIKE %s "
            "ORDER BY 1, 2",
            "functions": "SELECT proname, pg_get_function_result(oid), provolatile, prosrc, "
            "proconfig FROM pg_proc WHERE pronamespace = %s::regnamespace ORDER BY 1",
        }
        for key, sql in queries.items():
            param = f"{name}.%" if key == "triggers" else name
            rows = conn.execute(sql, (param,)).fetchall()
            shape[key] = [tuple(str(v).replace(name, "S") for v in row) for row in rows]
        return shape


@pytest.fixture
def schemas() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        postgres.drop_schema(name)


def test_sqlite_stepwise_equals_fresh(tmp_path: Path) -> None:
    SQLiteStore(str(tmp_path / "fresh.db")).close()
    old = SQLiteStore(str(tmp_path / "old.db"), migrate=False)
    for version in range(1, schema.latest() + 1):  # one deploy after another
        old.migrate(version)
    old.close()
    fresh = sqlite_shape(tmp_path / "fresh.db")
    assert set(fresh) == {
        "events",
        "history",
        "journal",
        "locks",
        "runs",
        "schedules",
        "schema_version",
        "signals",
        "ticks",
        "workers",
    }
    assert sqlite_shape(tmp_path / "old.db") == fresh


def test_postgres_stepwise_equals_fresh(schemas: list[str]) -> None:
    from durably.stores.postgres import PostgresStore

    fresh_name, old_name = postgres.new_schema("m"), postgres.new_schema("m")
    schemas += [fresh_name, old_name]
    PostgresStore(postgres.URL, schema=fresh_name).close()
    old = PostgresStore(postgres.URL, schema=old_name, migrate=False)
    for version in range(1, schema.latest() + 1):
        old.migrate(version)
    old.close()
    fresh = postgres_shape(fresh_name)
    assert fresh["triggers"] and fresh["functions"] and fresh["runs"]
    assert postgres_shape(old_name) == fresh


MIGRATOR = """
import os, sys, time, durably
while not os.path.exists(sys.argv[2]):  # all processes open the database at once
    time.sleep(0.001)
engine = durably.Engine(sys.argv[1])
engine.close()
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_ten_concurrent_migrators_leave_one_version(
    backend: str, tmp_path: Path, schemas: list[str]
) -> None:
    if backend == "sqlite":
        url = str(tmp_path / "race.db")
    else:
        name = postgres.new_schema("m")
        schemas.append(name)
        url = postgres.schema_url(name)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATOR, url, str(go)], env=env, stderr=subprocess.PIPE
        )
        for _ in range(10)
    ]
    time.sleep(1.0)  # let them all import durably and wait
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    expected = [(v,) for v in range(1, schema.latest() + 1)]
    query = "SELECT version FROM schema_version ORDER BY version"
    if backend == "sqlite":
        with sqlite3.connect(url) as conn:
            assert conn.execute(query).fetchall() == expected
    else:
        with postgres.connect() as conn:
            conn.execute(f"SET search_path TO {schemas[-1]}")
            assert conn.execute(query).fetchall() == expected


def _opens_while(hold: Any, open_store: Any) -> bool:
    """Whether ``open_store`` finishes while ``hold`` keeps its lock (it never lets go
    before the answer is in, so a store that wanted the lock could not finish)."""
    finished = threading.Event()

    def opening() -> None:
        open_store().close()
        finished.set()

    thread = threading.Thread(target=opening, daemon=True)
    thread.start()
    try:
        return finished.wait(20)
    finally:
        hold.rollback()
        thread.join(30)


def test_sqlite_current_schema_takes_no_write_lock(tmp_path: Path) -> None:
    path = str(tmp_path / "current.db")
    SQLiteStore(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing, for as long as it likes
    assert _opens_while(holder, lambda: SQLiteStore(path, busy_timeout=60))
    holder.close()


def test_postgres_current_schema_runs_no_ddl(schemas: list[str]) -> None:
    from durably.stores.postgres import PostgresStore

    name = postgres.new_schema("m")
    schemas.append(name)
    PostgresStore(postgres.URL, schema=name).close()
    holder = postgres.connect()
    holder.autocommit = False
    # A busy application's open transaction: DDL on runs (a trigger) would wait for it.
    holder.execute(f"LOCK TABLE {name}.runs IN ROW EXCLUSIVE MODE")
    assert _opens_while(holder, lambda: PostgresStore(postgres.URL, schema=name))
    holder.close()


def test_a_newer_schema_is_tolerated_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = str(tmp_path / "newer.db")
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (schema.latest() + 1,))
    SQLiteStore(path).close()
    assert "newer than this durably" in caplog.text
