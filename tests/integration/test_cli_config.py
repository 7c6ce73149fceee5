"""Configuration (file, then environment, then flags) and bad input: one clear line on
stderr and a meaningful exit code, never a traceback."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import durably
from durably.cli.output import NOT_FOUND, OK, STORE, USAGE
from tests import postgres
from tests.integration.cli import cli

SRC = str(Path(durably.__file__).resolve().parents[1])


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for variable in [v for v in os.environ if v.startswith("DURABLY_")]:
        monkeypatch.delenv(variable)
    return tmp_path


@pytest.fixture
def db(here: Path) -> str:
    path = str(here / "runs.db")
    assert cli("--store", path, "db", "migrate").code == OK
    return path


def settings(*args: str) -> dict[str, dict[str, object]]:
    done = cli("config", "-o", "json", *args)
    assert done.code == OK, done
    return done.json()  # type: ignore[no-any-return]


def test_file_then_environment_then_flags(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (here / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.durably]\nstore = "from-file.db"\n'
        'queues = ["a", "b"]\nconcurrency = 8\n\n[tool.durably.retention]\ncompleted = "7d"\n'
    )
    shown = settings()
    from_file = {"value": str(here / "from-file.db"), "source": str(here / "pyproject.toml")}
    assert shown["store"] == from_file  # beside the file
    assert shown["queues"]["value"] == ["a", "b"] and shown["concurrency"]["value"] == 8
    assert shown["retention.completed"]["value"] == 7 * 86400
    monkeypatch.setenv("DURABLY_STORE", "from-env.db")
    monkeypatch.setenv("DURABLY_QUEUES", "c, d")
    shown = settings()
    assert shown["store"] == {"value": "from-env.db", "source": "env DURABLY_STORE"}
    assert shown["queues"]["value"] == ["c", "d"]
    shown = settings("--store", "from-flag.db")
    assert shown["store"] == {"value": "from-flag.db", "source": "--store"}
    (here / "sub").mkdir()
    monkeypatch.chdir(here / "sub")  # the nearest file up from here
    assert settings()["concurrency"]["source"] == str(here / "pyproject.toml")


def test_a_relative_store_in_a_file_is_beside_the_file(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (here / "pyproject.toml").write_text('[tool.durably]\nstore = "runs.db"\n')
    assert cli("db", "migrate").code == OK
    (here / "deep" / "er").mkdir(parents=True)
    monkeypatch.chdir(here / "deep" / "er")  # the same database from anywhere below
    assert settings()["store"]["value"] == str(here / "runs.db")
    assert cli("runs", "list").code == OK and not (here / "deep" / "er" / "runs.db").exists()
    monkeypatch.setenv("DURABLY_STORE", "runs.db")  # the environment: the current folder
    assert settings()["store"]["value"] == "runs.db"


def test_a_broken_pyproject_of_another_project_is_not_read(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (here / "pyproject.toml").write_text("[project\nname = 'another'\n")
    (here / "app").mkdir()
    monkeypatch.chdir(here / "app")
    assert cli("--store", "x.db", "db", "migrate").code == OK


def test_durably_toml_and_an_explicit_file(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (here / "durably.toml").write_text('store = "own.db"\nlog_level = "debug"\n')
    shown = settings()
    assert shown["store"]["value"] == str(here / "own.db")
    assert shown["log_level"]["value"] == "DEBUG"
    (here / "other.toml").write_text('store = "other.db"\n')
    assert settings("--config", "other.toml")["store"]["value"] == str(here / "other.db")
    monkeypatch.setenv("DURABLY_CONFIG", "other.toml")
    assert settings()["store"]["value"] == str(here / "other.db")


def test_passwords_are_masked(here: Path) -> None:
    url = "postgresql://app:s3cret@db.example/prod"
    shown = settings("--store", url)
    assert shown["store"]["value"] == "postgresql://app:***@db.example/prod"
    assert "s3cret" not in cli("config", "--store", url).out
    query = "postgresql://app@db.example/prod?password=s3cret&sslmode=require"
    assert settings("--store", query)["store"]["value"] == (
        "postgresql://app@db.example/prod?password=***&sslmode=require"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("store = \n", "not valid TOML"),
        ('stor = "x.db"\n', "unknown key 'stor'"),
        ("concurrency = 0\n", "'concurrency': must be a positive integer"),
        ('lease = "soon"\n', "'lease': "),
        ('output = "yaml"\n', "must be one of table, json, jsonl, ids"),
        ("[retention]\ncompleted = -1\n", "'retention.completed'"),
        ("tool = 1\n", "must be a table"),
    ],
)
def test_a_malformed_file_names_the_file_and_key(here: Path, content: str, message: str) -> None:
    (here / "durably.toml").write_text(content)
    done = cli("runs", "list")
    assert done.code == USAGE, done
    assert str(here / "durably.toml") in done.err and message in done.err
    assert done.err.count("\n") == 1


def test_a_malformed_environment_value_names_the_variable(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DURABLY_CONCURRENCY", "lots")
    done = cli("config")
    assert done.code == USAGE and "$DURABLY_CONCURRENCY: must be a positive integer" in done.err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["runs", "show", "nope"], NOT_FOUND, "no run with id 'nope'"),
        (["runs", "list", "--status", "done"], USAGE, "unknown status 'done'"),
        (["runs", "list", "--since", "lately"], USAGE, "neither a duration ago"),
        (["runs", "list", "--cursor", "garbage"], USAGE, "invalid cursor"),
        (["runs", "list", "--limit", "0"], USAGE, "--limit"),
        (["start", "w.x", "[1,"], USAGE, "the arguments is not valid JSON"),
        (["start", "w.x", "@missing.json"], USAGE, "cannot read the arguments file"),
        (["start", "w.x", "--delay", "forever"], USAGE, "--delay"),
        (["signal", "nope", "go", "{oops"], USAGE, "the signal's payload is not valid JSON"),
        (["signal", "nope", "go", "1"], NOT_FOUND, "nope"),
        (["db", "purge", "--older-than", "old"], USAGE, "invalid duration"),
        (["runs", "frobnicate"], USAGE, "No such command 'frobnicate'"),
        (["runs", "list", "--bogus"], USAGE, "No such option '--bogus'"),
        (["-o", "xml", "runs", "list"], USAGE, "'xml' is not one of"),
        (["runs", "list", "--since", "9999-12-31T23:59:59-05:00"], USAGE, "neither a duration"),
        (["runs", "result", "x", "--wait", "--timeout", "nan"], USAGE, "positive number of"),
        (["start", "w.x", "--wait", "--timeout", "-1"], USAGE, "positive number of seconds"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(
    db: str, args: list[str], code: int, message: str
) -> None:
    done = cli("--store", db, *args)
    assert done.code == code, done
    assert message in done.err, done
    assert done.err.startswith("error: ") and done.out == ""


def test_control_characters_never_reach_the_terminal(db: str) -> None:
    name = "ev\x1b]0;pwned\x07\x1b[2Jil"  # sets the window title, clears the screen
    assert cli("--store", db, "start", name, "[]").code == OK
    for args in (["runs", "list"], ["runs", "list", "--workflow", name]):
        listed = cli("--store", db, *args)
        assert listed.code == OK and "\x1b" not in listed.out + listed.err, listed
        assert "ev\\x1b]0;pwned\\x07" in listed.out
    assert "\x1b" not in cli("--store", db, "runs", "show", "\x1bnope").err


def test_no_command_prints_the_help(here: Path) -> None:
    for args in ([], ["runs"], ["schedules"]):
        done = cli(*args)
        assert done.code == OK and done.out.startswith("Usage: durably"), done
        assert "Commands:" in done.out and done.err == ""


def test_a_read_never_makes_a_database(here: Path) -> None:
    (here / "other.db").touch()  # another program's (empty) SQLite file
    done = cli("--store", str(here / "other.db"), "runs", "list")
    assert done.code == STORE and "no durably database at" in done.err, done
    with sqlite3.connect(here / "other.db") as conn:  # not migrated into a durably one
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []
    postgres.require()
    typo = f"typo_{os.getpid()}"
    done = cli("--store", postgres.schema_url(typo), "runs", "list")
    assert done.code == STORE and f"schema={typo}" in done.err, done
    assert cli("--store", postgres.schema_url(typo), "db", "status").code == OK
    with postgres.connect() as conn:
        made = "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s"
        assert conn.execute(made, (typo,)).fetchone() is None


def test_status_of_a_database_never_migrated(here: Path) -> None:
    (here / "empty.db").touch()
    done = cli("--store", str(here / "empty.db"), "db", "status", "-o", "json")
    assert done.code == OK, done
    assert done.json()["schema_version"] == 0 and done.json()["schema"] == "behind"


def test_a_missing_or_unreachable_store(here: Path) -> None:
    done = cli("runs", "list")
    assert done.code == STORE and "no database at durably.db" in done.err, done
    assert not (here / "durably.db").exists()  # a read creates nothing
    gone = cli("--store", "postgresql://postgres@127.0.0.1:1/none", "runs", "list")
    assert gone.code == STORE and "cannot connect to PostgreSQL" in gone.err, gone
    assert gone.err.count("\n") == 1
    typo = cli("--store", "postgres:/x", "runs", "list")
    assert typo.code == USAGE and "missing '://'" in typo.err


def test_status_of_an_old_schema_does_not_migrate_it(here: Path) -> None:
    import shutil

    old = here / "old.db"
    fixture = Path(__file__).parent / "data" / "schema-v4.sqlite"
    shutil.copy(fixture, old)
    status = cli("--store", str(old), "db", "status", "-o", "json")
    assert status.json()["schema_version"] == 4 and status.json()["schema"] == "behind"
    assert cli("--store", str(old), "db", "status", "-o", "json").json()["schema_version"] == 4
    migrated = cli("--store", str(old), "db", "migrate", "-o", "json")
    assert migrated.json()["from"] == 4 and migrated.json()["to"] == migrated.json()["latest"]
    assert "current" in cli("--store", str(old), "db", "status").out


def test_postgres_status(here: Path) -> None:
    postgres.require()
    schema = postgres.new_schema("cfg")
    try:
        url = postgres.schema_url(schema)
        assert cli("--store", url, "db", "migrate").code == OK
        assert cli("--store", url, "db", "status", "-o", "json").json()["schema"] == "current"
    finally:
        postgres.drop_schema(schema)


def test_python_dash_m_durably_is_the_same_command(db: str) -> None:
    env = dict(os.environ, PYTHONPATH=SRC, NO_COLOR="1")
    done = subprocess.run(
        [sys.executable, "-m", "durably", "--store", db, "runs", "list", "-o", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "durably", "--store", db, "runs", "show", "nope"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == NOT_FOUND and bad.stderr == "error: no run with id 'nope'\n"
