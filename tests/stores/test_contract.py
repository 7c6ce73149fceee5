"""The Store contract (durably.testing.contract) on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from durably.stores.base import Store
from durably.stores.sqlite import SQLiteStore
from durably.testing.contract import StoreContract
from tests import postgres


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        store = SQLiteStore(str(tmp_path / "contract.db"))
        yield store
        store.close()


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def store(self) -> Iterator[Store]:
        from durably.stores.postgres import PostgresStore

        postgres.require()
        name = postgres.new_schema("c")
        store = PostgresStore(postgres.URL, schema=name)
        yield store
        store.close()
        postgres.drop_schema(name)
