"""Fixtures of the integration tier: every engine test runs against each backend."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import durably
from durably.testing import TestEngine
from tests import postgres

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """A fresh, empty store of each backend."""
    if request.param == "sqlite":
        yield os.path.join(tmp_path, "durably.db")
        return
    postgres.require()
    schema = postgres.new_schema()
    yield postgres.schema_url(schema)
    postgres.drop_schema(schema)


@pytest.fixture
def engine(store_url: str) -> Iterator[durably.Engine]:
    """A launched engine on a fresh store, polling fast so cross-run waits are short."""
    with durably.Engine(store_url, poll_interval=0.05, shutdown_grace=2) as eng:
        yield eng


@pytest.fixture
def kit(store_url: str) -> Iterator[TestEngine]:
    """The same store on a virtual clock (durably.testing): timers, backoff and schedules
    of minutes take milliseconds."""
    engine = TestEngine(store_url, poll_interval=0.05, shutdown_grace=2)
    yield engine
    engine.close()
