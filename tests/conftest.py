"""Shared fixtures: every engine test runs against each backend (the contract suite)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

import durably

#: The PostgreSQL of the test machine (README: Tests); each test gets its own schema.
POSTGRES_URL = os.environ.get("DURABLY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1/test")
BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """A fresh, empty store of each backend."""
    if request.param == "sqlite":
        yield os.path.join(tmp_path, "durably.db")
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{POSTGRES_URL}?schema={schema}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def engine(store_url: str) -> Iterator[durably.Engine]:
    """A launched engine on a fresh store, polling fast so cross-run waits are short."""
    with durably.Engine(store_url, poll_interval=0.05, shutdown_grace=2) as eng:
        yield eng
