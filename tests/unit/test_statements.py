"""SQL statements in files, and their placeholders adapted without breaking literals."""

from __future__ import annotations

import re

import pytest

from durably.stores.sql.statements import load, placeholders, pyformat, render


@pytest.mark.parametrize(
    ("written", "adapted"),
    [
        ("SELECT ? , ?", "SELECT %s , %s"),
        ("SELECT 1 WHERE name LIKE 'a%' AND x = ?", "SELECT 1 WHERE name LIKE 'a%%' AND x = %s"),
        ("SELECT '?' || ?", "SELECT '?' || %s"),
        ("SELECT 'it''s ?' , ?", "SELECT 'it''s ?' , %s"),
        ('SELECT "we?ird" FROM t WHERE a = ?', 'SELECT "we?ird" FROM t WHERE a = %s'),
        ("SELECT 5 % 3 -- a comment? 100%\n, ?", "SELECT 5 %% 3 -- a comment? 100%%\n, %s"),
        ("SELECT /* ? % */ ?", "SELECT /* ? %% */ %s"),
    ],
)
def test_pyformat_touches_only_real_placeholders(written: str, adapted: str) -> None:
    assert pyformat(written) == adapted


def test_render_fills_only_the_parts_given() -> None:
    assert render("a {x} {y}", x="1") == "a 1 {y}"
    assert placeholders(3) == "?,?,?"


@pytest.mark.parametrize("group", ["runs", "claims", "messages"])
def test_every_statement_loads_filled_in(group: str) -> None:
    statements = load(group)
    assert statements
    shared = {"fence", "ended", "run_columns", "entry_columns", "wake"}
    for name, text in statements.items():
        assert name.isidentifier() and text.strip(), name
        assert not shared & set(re.findall(r"\{(\w+)\}", text)), name
        assert "--" not in text, f"{name}: comment lines are dropped when loading"
        assert "{now}" not in text and "julianday" not in text, name
