"""SQL statements: loaded from ``queries/*.sql``, adapted to a dialect's placeholders.

A query file holds named statements::

    -- name: create_run
    INSERT INTO runs (...) VALUES (?, ?, ...)

Statements use ``?`` placeholders (SQLite's) and ``durably_now()`` for the store's
clock, which both dialects define. ``{fence}``-style names are the shared
fragments of :data:`durably.stores.sql.rows.FRAGMENTS`, filled in when a file is
loaded; a statement that needs a part only known at the call (a list of ids)
names it too and is rendered by :func:`render`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from durably.stores.base import Transaction
from durably.stores.sql.rows import FRAGMENTS

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.M)
# What %s-style drivers must see differently: string literals, quoted names and
# comments keep their ``?``; a ``?`` elsewhere is a placeholder; every ``%`` is doubled.
_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|\?|%", re.S)


@cache
def load(group: str) -> dict[str, str]:
    """The statements of ``queries/<group>.sql`` by name, shared fragments filled in."""
    text = (Path(__file__).parent / "queries" / f"{group}.sql").read_text("utf-8")
    pieces = _NAME.split(text)
    statements: dict[str, str] = {}
    for name, body in zip(pieces[1::2], pieces[2::2], strict=True):
        lines = [line.strip() for line in body.splitlines()]
        kept = [line for line in lines if line and not line.startswith("--")]
        statements[name] = render("\n".join(kept), **FRAGMENTS)
    return statements


def render(statement: str, **parts: str) -> str:
    """Fill in the ``{name}`` parts given (others are left for a later render)."""
    for name, part in parts.items():
        statement = statement.replace("{" + name + "}", part)
    return statement


def placeholders(count: int) -> str:
    """``?, ?, ?`` for a list of ``count`` values."""
    return ",".join("?" * count)


def pyformat(statement: str) -> str:
    """The statement for a driver with ``%s`` placeholders (psycopg).

    Only ``?`` outside string literals, quoted identifiers and comments becomes
    ``%s``; every literal ``%`` (``LIKE 'a%'`` included) becomes ``%%``, which such
    drivers read back as ``%``.
    """

    def swap(match: re.Match[str]) -> str:
        token = match[0]
        if token == "?":
            return "%s"
        return token.replace("%", "%%")

    return _TOKEN.sub(swap, statement)


def execute(tx: Transaction, statement: str, params: Sequence[Any] = ()) -> Any:
    """Run one statement in an open SQL transaction (a DB-API connection); its cursor."""
    return tx.execute(statement, params)  # type: ignore[attr-defined]


def execute_many(tx: Transaction, statement: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run one statement once per row of parameters (pipelined by drivers that can)."""
    tx.cursor().executemany(statement, rows)  # type: ignore[attr-defined]
