"""Fixtures of the acceptance tests on PostgreSQL: a schema per test, its workers.

A test that asks for a schema fails at once, with one message naming the URL and
how to start the server, when the test PostgreSQL does not answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import postgres
from tests.acceptance.pg_harness import Schema, Worker, connect, terminate_workers


@pytest.fixture
def schema(tmp_path: Path) -> Iterator[Schema]:
    """A fresh schema (created by the first engine that opens it), dropped afterwards."""
    postgres.require()
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
