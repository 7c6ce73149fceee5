"""Stores: the only modules that touch a database (see :mod:`durably.stores.base`)."""

from __future__ import annotations

import re

from durably.clock import SYSTEM, Clock
from durably.stores.base import Store
from durably.stores.sqlite import SQLiteStore, Synchronous

_SCHEME_TYPO = re.compile(r"^(postgresql|postgres|sqlite)(?::|//)")


def sqlite_file(store: str) -> str | None:
    """The SQLite file a store URL names (``":memory:"`` for none); ``None`` for PostgreSQL.

    Raises:
        ValueError: a URL of another scheme, or one that looks like a typo.
    """
    typo = _SCHEME_TYPO.match(store)
    if typo is not None and "://" not in store:
        raise ValueError(
            f"{store!r} looks like a URL missing '://' after {typo[1]!r}; "
            f"write '{typo[1]}://...', or './{store}' for a file of that name"
        )
    if store.startswith(("postgresql://", "postgres://")):
        return None
    if store.startswith("sqlite://"):
        return store.removeprefix("sqlite://").removeprefix("/") or ":memory:"
    if "://" in store:
        raise ValueError(
            f"unsupported store URL {store.split('://')[0]}://...; use a path, "
            "'sqlite:///path' or 'postgresql://user@host/db'"
        )
    return store


def open_store(
    store: str | Store | None,
    synchronous: Synchronous = "normal",
    clock: Clock = SYSTEM,
    *,
    migrate: bool = True,
) -> Store:
    """A store from a path, a URL (``sqlite:///path``), ``":memory:"`` or a Store object;
    ``migrate=False`` leaves an older schema as it is (to read its version)."""
    if store is None:
        store = "durably.db"
    if not isinstance(store, str):
        return store
    path = sqlite_file(store)
    if path is None:
        from durably.stores.postgres import PostgresStore  # psycopg only when asked for

        return PostgresStore.from_url(store, clock=clock, migrate=migrate)
    return SQLiteStore(path, synchronous=synchronous, clock=clock, migrate=migrate)
