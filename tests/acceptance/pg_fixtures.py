"""Fixtures of the PostgreSQL acceptance tests, loaded by their ``pytest_plugins``.

A module of its own (not :mod:`tests.acceptance.pg_harness`, which the tests
import) so that pytest can load it as a plugin before anything imported it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.pg_harness import Schema, Worker, connect, terminate_workers


@pytest.fixture
def schema(tmp_path: Path) -> Iterator[Schema]:
    """A fresh schema (created by the first engine that opens it), dropped afterwards."""
    s = Schema(f"pgt_{uuid.uuid4().hex[:12]}", tmp_path)
    try:
        yield s
    finally:
        with connect() as conn:
            terminate_workers(s, conn)  # none should be left; be sure nothing holds locks
            conn.execute(f"DROP SCHEMA IF EXISTS {s.name} CASCADE")


@pytest.fixture
def workers(schema: Schema) -> Iterator[list[Worker]]:
    """Every worker a test starts is appended here and ended after the test (before the
    schema is dropped)."""
    started: list[Worker] = []
    try:
        yield started
    finally:
        for w in started:
            w.stop()
