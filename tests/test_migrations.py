"""Migrations: applying them one by one equals a fresh schema; concurrent migrators agree."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from durably.stores.postgres import PostgresStore
from durably.stores.schema import MIGRATIONS
from durably.stores.sqlite import SQLiteStore
from tests.conftest import POSTGRES_URL

Shape = dict[str, list[tuple[object, ...]]]


def sqlite_shape(path: Path) -> Shape:
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        shape: Shape = {}
        for table in sorted(tables):
            shape[table] = list(conn.execute(f"PRAGMA table_info({table})"))
            indexes = conn.execute(f"PRAGMA index_list({table})").fetchall()
            for index in sorted(indexes, key=lambda r: r[1]):
                columns = [r[2] for r in conn.execute(f"PRAGMA index_info({index[1]})")]
                shape[table].append((index[1], index[2], index[4], *columns))
        return shape


def postgres_shape(schema: str) -> Shape:
    with psycopg.connect(POSTGRES_URL) as conn:
        shape: Shape = {}
        for table, column, kind, nullable, default in conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema = %s "
            "ORDER BY table_name, column_name",
            (schema,),
        ):
            shape.setdefault(table, []).append((column, kind, nullable, default))
        for table, name, definition in conn.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = %s "
            "ORDER BY indexname",
            (schema,),
        ):
            shape.setdefault(table, []).append((name, definition.replace(schema, "S")))
        return shape


@pytest.fixture
def schemas() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        for name in names:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def test_sqlite_stepwise_equals_fresh(tmp_path: Path) -> None:
    fresh = SQLiteStore(str(tmp_path / "fresh.db"))
    fresh.close()
    old = SQLiteStore(str(tmp_path / "old.db"), migrate=False)
    for version in range(1, len(MIGRATIONS) + 1):  # one deploy after another
        old.migrate(version)
    old.close()
    assert sqlite_shape(tmp_path / "old.db") == sqlite_shape(tmp_path / "fresh.db")


def test_postgres_stepwise_equals_fresh(schemas: list[str]) -> None:
    fresh_name, old_name = (f"m_{uuid.uuid4().hex[:10]}" for _ in range(2))
    schemas += [fresh_name, old_name]
    PostgresStore(POSTGRES_URL, schema=fresh_name).close()
    old = PostgresStore(POSTGRES_URL, schema=old_name, migrate=False)
    for version in range(1, len(MIGRATIONS) + 1):
        old.migrate(version)
    old.close()
    fresh, stepwise = postgres_shape(fresh_name), postgres_shape(old_name)
    assert fresh and stepwise == fresh


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
        name = f"m_{uuid.uuid4().hex[:10]}"
        schemas.append(name)
        url = f"{POSTGRES_URL}?schema={name}"
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
    expected = [(v,) for v in range(1, len(MIGRATIONS) + 1)]
    query = "SELECT version FROM schema_version ORDER BY version"
    if backend == "sqlite":
        with sqlite3.connect(url) as conn:
            assert conn.execute(query).fetchall() == expected
    else:
        with psycopg.connect(POSTGRES_URL) as conn:
            conn.execute(f"SET search_path TO {schemas[-1]}")
            assert conn.execute(query).fetchall() == expected
