"""The schema's versions: migration files, what a database at version N needs, scripts."""

from __future__ import annotations

import pytest

from durably.stores.sql import schema


def test_versions_count_alike_on_both_dialects() -> None:
    sqlite, postgres = schema.migrations("sqlite"), schema.migrations("postgresql")
    assert [m.version for m in sqlite] == [m.version for m in postgres]
    assert [m.version for m in sqlite] == list(range(1, schema.latest() + 1))
    assert schema.latest() >= 5


def test_a_dialect_only_migration_is_empty_for_the_other() -> None:
    store_clock = {m.version: m for m in schema.migrations("sqlite")}[5]
    assert store_clock.script == ""
    assert "durably_now" in schema.migrations("postgresql")[4].script


@pytest.mark.parametrize(
    ("current", "target", "todo"),
    [
        (0, None, []),  # a fresh install of the newest schema at once
        (0, 2, [1, 2]),
        (3, None, list(range(4, schema.latest() + 1))),
        (schema.latest(), None, None),  # current: nothing to do, no lock taken
        (4, 3, None),
    ],
)
def test_plan(current: int, target: int | None, todo: list[int] | None) -> None:
    assert schema.plan(current, target) == todo


def test_statements_split_where_statements_end() -> None:
    script = (
        "-- a comment; with a semicolon\n"
        "CREATE TABLE t (a TEXT DEFAULT 'x;y');\n"
        "CREATE TRIGGER g AFTER INSERT ON t BEGIN\n"
        "  UPDATE t SET a = 'z';\n"
        "END;\n"
    )
    assert schema.statements(script) == [
        "CREATE TABLE t (a TEXT DEFAULT 'x;y')",
        "CREATE TRIGGER g AFTER INSERT ON t BEGIN\n  UPDATE t SET a = 'z';\nEND",
    ]
    with pytest.raises(ValueError, match="incomplete"):
        schema.statements("CREATE TABLE t (a TEXT")


def test_fresh_installs_name_every_table() -> None:
    for dialect in schema.DIALECTS:
        text = schema.fresh(dialect)
        for table in ("runs", "journal", "signals", "events"):
            assert f"CREATE TABLE {table} (" in text
    assert "CREATE TRIGGER" in schema.fresh("postgresql")
    assert "CREATE TRIGGER" not in schema.fresh("sqlite")
