"""The schema's versions: a fresh install, the migrations between versions, their SQL files.

``schema.sql`` creates the newest schema at once; ``migrations/NNNN_name.sql``
takes a database from version N-1 to N. A file named ``NNNN_name.<dialect>.sql``
belongs to one dialect only; the other dialect records the version with nothing
to do, so both count versions alike. ``{serial}``, ``{without_rowid}`` and, on
PostgreSQL, ``{channel}`` are filled in per dialect. A store runs DDL only when
its database is behind (:func:`plan`): starting an engine on a current schema
takes no lock.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from dataclasses import dataclass
from functools import cache
from pathlib import Path

log = logging.getLogger("durably.store")

_FILE = re.compile(r"^(\d{4})_(\w+?)(?:\.(sqlite|postgresql))?\.sql$")
DIALECTS = ("sqlite", "postgresql")


@dataclass(frozen=True, slots=True)
class Migration:
    """One step from ``version - 1`` to ``version``; an empty script for the other
    dialect's migrations."""

    version: int
    name: str
    script: str


#: The SQL files live next to this module (a plain directory: durably is not zipped).
HERE = Path(__file__).parent


def _text(name: str) -> str:
    return (HERE / name).read_text(encoding="utf-8")


@cache
def migrations(dialect: str) -> tuple[Migration, ...]:
    """Every migration, in version order, with the scripts of ``dialect``."""
    found: dict[int, Migration] = {}
    for entry in (HERE / "migrations").iterdir():
        match = _FILE.match(entry.name)
        if match is None:
            continue
        version, name, only = int(match[1]), match[2], match[3]
        script = entry.read_text(encoding="utf-8") if only in (None, dialect) else ""
        if version in found and found[version].script and script:
            raise RuntimeError(f"two migrations numbered {version}")
        if version not in found or script:
            found[version] = Migration(version, name, script)
    versions = sorted(found)
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"migration versions must be 1..N without gaps, not {versions}")
    return tuple(found[v] for v in versions)


def latest() -> int:
    """The newest schema version this code knows."""
    return len(migrations(DIALECTS[0]))


@cache
def fresh(dialect: str) -> str:
    """The script that creates the newest schema on an empty database."""
    own = HERE / f"schema.{dialect}.sql"
    extra = own.read_text(encoding="utf-8") if own.is_file() else ""
    return _text("schema.sql") + "\n" + extra


def plan(current: int, target: int | None) -> list[int] | None:
    """The versions to apply to a database at ``current`` to reach ``target`` (default:
    the newest); ``[]`` for a fresh install of the newest schema; ``None`` when the
    database is current already (or ahead: newer code migrated it, which this code
    tolerates, as migrations only ever add)."""
    goal = latest() if target is None else target
    if current > latest():
        log.warning(
            "the database schema is at version %d, newer than this durably's %d; "
            "upgrade durably on this host",
            current,
            latest(),
        )
    if current >= goal:
        return None
    if current == 0 and goal == latest():
        return []
    return list(range(current + 1, goal + 1))


def scripts(dialect: str, todo: list[int]) -> list[tuple[str, range]]:
    """The scripts that carry out ``todo`` (from :func:`plan`), each with the versions it
    records: the fresh schema for all of them, or one migration each."""
    if not todo:
        return [(fresh(dialect), range(1, latest() + 1))]
    found = migrations(dialect)
    return [(found[v - 1].script, range(v, v + 1)) for v in todo]


def statements(script: str) -> list[str]:
    """A script's statements, for a driver that runs one at a time (SQLite).

    Split where a line ends a complete statement (as SQLite's own parser tells), so
    a ``;`` inside a quoted string or a trigger's body does not end one.
    """
    done: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if stripped := _without_comments(pending):
                done.append(stripped)
            pending = ""
    if _without_comments(pending):
        raise ValueError(f"incomplete SQL statement at the end of a script: {pending!r}")
    return done


def _without_comments(text: str) -> str:
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return "\n".join(lines).strip().rstrip(";").strip()
