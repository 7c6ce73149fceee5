"""Stores: the only modules that touch a database (see :mod:`durably.stores.base`)."""

from __future__ import annotations

from durably.stores.base import Store
from durably.stores.sqlite import SQLiteStore, Synchronous


def open_store(store: str | Store | None, synchronous: Synchronous = "normal") -> Store:
    """A store from a path, a URL (``sqlite:///path``), ``":memory:"`` or a Store object."""
    if store is None:
        return SQLiteStore("durably.db", synchronous=synchronous)
    if not isinstance(store, str):
        return store
    if store.startswith(("postgresql://", "postgres://")):
        from durably.stores.postgres import PostgresStore

        return PostgresStore.from_url(store)
    if store.startswith("sqlite://"):
        path = store.removeprefix("sqlite://").removeprefix("/")
        return SQLiteStore(path or ":memory:", synchronous=synchronous)
    if "://" in store:
        raise ValueError(
            f"unsupported store URL {store.split('://')[0]}://...; use a path, "
            "'sqlite:///path' or 'postgresql://user@host/db'"
        )
    return SQLiteStore(store, synchronous=synchronous)
