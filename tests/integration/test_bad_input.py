"""Bad input gets a clear, typed error and loses nothing (docs/guarantees.md, battery item 11)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

import durably
from durably.stores.sql.statements import execute

SQLISH = "x'; DROP TABLE runs; --"


@durably.workflow(name=SQLISH)
def sqlish(payload: object) -> object:
    return payload


@durably.workflow(name="t.bad.echo")
def echo(payload: object) -> object:
    return payload


def test_sql_looking_names_and_values_are_data(engine: durably.Engine) -> None:
    handle = engine.with_options(run_id=SQLISH + "run").start_workflow(sqlish, SQLISH)
    assert handle.result(timeout=10) == SQLISH
    assert engine.get_run(SQLISH + "run").workflow == SQLISH
    assert len(engine.list_runs(workflow=SQLISH)) == 1


def test_deeply_nested_argument(engine: durably.Engine) -> None:
    nested: list[object] = []
    for _ in range(100_000):
        nested = [nested]
    with pytest.raises(durably.SerializationError, match="nested too deeply"):
        engine.start_workflow(echo, nested)
    assert engine.list_runs() == []


@pytest.mark.parametrize("bad", [float("nan"), {1j}, b"ok".decode, object()])
def test_unserializable_arguments(engine: durably.Engine, bad: object) -> None:
    with pytest.raises(durably.SerializationError):
        engine.start_workflow(echo, bad)
    assert engine.list_runs() == []


def test_planted_pickle_is_never_executed(
    engine: durably.Engine, store_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    handle = engine.start_workflow(echo, "harmless")
    handle.result(timeout=10)
    blob = pickle.dumps(Exploit(), protocol=0).decode("latin-1")  # ASCII: fits a text column
    engine.store.transact(
        lambda tx: execute(
            tx,
            engine.store.inline("UPDATE runs SET output = ? WHERE run_id = ?"),  # type: ignore[attr-defined]
            (blob, handle.run_id),
        )
    )
    with durably.Engine(store_url, execute=False) as reader:  # reads what the database holds
        with pytest.raises(durably.SerializationError):
            reader.handle(handle.run_id).result(timeout=10)
        with pytest.raises(durably.SerializationError):
            reader.get_run(handle.run_id)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"timeout": "soon"}, "soon"),
        ({"timeout": -1}, "-1"),
        ({"timeout": 0}, "greater than zero"),
        ({"retries": -1}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"backoff": "linear"}, "backoff"),
        ({"backoff": -2}, "backoff"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_step_options(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        durably.step(**kwargs)  # type: ignore[call-overload]


def test_conflicting_workflow_name() -> None:
    with pytest.raises(ValueError, match="already registered"):

        @durably.workflow(name="t.bad.echo")
        def other(payload: object) -> object:
            return payload


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"run_id": ""}, "run_id"),
        ({"run_id": "x" * 201}, "run_id"),
        ({"idempotency_key": 7}, "idempotency_key"),
        ({"delay": "later"}, "later"),
    ],
)
def test_bad_start_options(engine: durably.Engine, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        engine.with_options(**kwargs).start_workflow(echo, 1)  # type: ignore[arg-type]
    assert engine.list_runs() == []


def test_a_start_option_given_as_an_argument_is_refused(engine: durably.Engine) -> None:
    with pytest.raises(TypeError, match=r"'queue' is a start option.*with_options\(queue="):
        engine.start_workflow(echo, 1, queue="billing")  # type: ignore[call-arg, arg-type]
    with pytest.raises(TypeError, match="missing a required argument: 'payload'"):
        engine.start_workflow(echo)  # type: ignore[call-overload]
    assert engine.list_runs() == []


def test_not_a_workflow(engine: durably.Engine) -> None:
    with pytest.raises(durably.WorkflowNotFound, match="not a durably workflow"):
        engine.start_workflow(print)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("store", "kwargs", "match"),
    [
        ("redis://localhost", {}, "unsupported store URL"),
        ("durably.db", {"workers": 0}, "workers"),
        ("durably.db", {"lease": 0.1}, "lease"),
        ("durably.db", {"synchronous": "off"}, "synchronous"),
    ],
)
def test_bad_engine_options(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    store: str,
    kwargs: dict[str, object],
    match: str,
) -> None:
    monkeypatch.chdir(tmp_path)  # the default store is a file of the working directory
    with pytest.raises(ValueError, match=match):
        durably.Engine(store, **kwargs)  # type: ignore[arg-type]


def test_sqlite_url_and_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "private.db"
    engine = durably.Engine(f"sqlite:///{path}")
    try:
        assert engine.start_workflow(echo, 1).run_id
    finally:
        engine.close()
    assert (path.stat().st_mode & 0o777) == 0o600
