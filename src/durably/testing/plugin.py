"""The pytest plugin (registered as ``durably``): fixtures ``virtual_clock`` and
``durably_engine``.

``durably_engine`` is a :class:`~durably.testing.TestEngine` on ``virtual_clock``,
closed after the test. Its store is in memory unless ``--durably-store`` (or the ini
option ``durably_store``) names another: ``sqlite``, or a PostgreSQL URL, where each
test gets a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from durably.testing.clock import VirtualClock
from durably.testing.engine import TestEngine


def pytest_addoption(parser: pytest.Parser) -> None:
    help = "the store of the durably_engine fixture: memory (default), sqlite, or a URL"
    parser.addoption("--durably-store", default=None, help=help)
    parser.addini("durably_store", help=help, default="memory")


@pytest.fixture
def virtual_clock() -> VirtualClock:
    """A :class:`~durably.testing.VirtualClock` starting now, for this test alone."""
    return VirtualClock()


@pytest.fixture
def durably_engine(
    request: pytest.FixtureRequest, virtual_clock: VirtualClock
) -> Iterator[TestEngine]:
    """A launched :class:`~durably.testing.TestEngine` on ``virtual_clock``."""
    store = request.config.getoption("--durably-store") or request.config.getini("durably_store")
    schema = None
    if store.startswith(("postgres://", "postgresql://")):
        schema = "test_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:50]
        store = _with_schema(store, schema)
    engine = TestEngine(store, clock=virtual_clock)
    try:
        yield engine
    finally:
        engine.close()
        if schema is not None:
            _drop(store)


def _with_schema(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("schema", "search_path")]
    return urlunsplit(parts._replace(query=urlencode([*query, ("schema", schema)])))


def _drop(url: str) -> None:
    from durably.stores.postgres import PostgresStore

    store = PostgresStore.from_url(url, migrate=False)
    try:
        store.drop_schema()
    finally:
        store.close()
