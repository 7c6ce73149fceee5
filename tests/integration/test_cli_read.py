"""The read commands, in every output format, on each backend, with no workflow code:
the registry is emptied while the CLI runs, as in a shell that imports nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

import durably
from durably import registry
from durably.cli.output import FAILED, NOT_ENDED, NOT_FOUND, OK, REFUSED, USAGE
from durably.records import RunStatus
from tests.integration.cli import ANSI, Done, cli


@durably.step(name="clir.add")
def add(a: int, b: int) -> int:
    return a + b


@durably.workflow(name="clir.three")
def three(n: int) -> int:
    total = add(0, n)
    total = add(total, n)
    durably.set_event("progress", {"done": 2})
    return add(total, n)


@durably.workflow(name="clir.broken")
def broken() -> None:
    raise ValueError("it broke")


@durably.workflow(name="clir.asks")
def asks() -> Any:
    return durably.wait_for_signal("approved", timeout="1h")


@durably.workflow(name="clir.naps")
def naps() -> str:
    durably.sleep("1h")
    return "rested"


@pytest.fixture
def runs(
    store_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> Iterator[dict[str, str]]:
    """Runs in each state, made by an engine that is gone when the CLI runs."""
    with durably.Engine(store_url, poll_interval=0.05) as engine:
        done = [engine.start_workflow(three, n) for n in (1, 2)]
        for handle in done:
            handle.result(timeout=20)
        failed = engine.start_workflow(broken)
        with pytest.raises(durably.WorkflowFailed):
            failed.result(timeout=20)
        waiting = engine.with_options(idempotency_key="ask-1").start_workflow(asks)
        sleeping = engine.start_workflow(naps)
        deadline = time.monotonic() + 20
        while {engine.get_run(h.run_id).status for h in (waiting, sleeping)} != {
            RunStatus.WAITING,
            RunStatus.SLEEPING,
        }:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    monkeypatch.setenv("DURABLY_STORE", store_url)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(registry, "_workflows", {})  # the CLI knows no workflow
    yield {
        "completed": done[0].run_id,
        "completed2": done[1].run_id,
        "failed": failed.run_id,
        "waiting": waiting.run_id,
        "sleeping": sleeping.run_id,
    }


def parsed(done: Done, fmt: str) -> Any:
    """The command's output, checked for its format; JSON values for json/jsonl."""
    assert not ANSI.search(done.out), done
    if fmt == "json":
        return done.json()
    if fmt == "jsonl":
        return done.lines()
    return done.out


@pytest.mark.parametrize("fmt", ["table", "json", "jsonl", "ids"])
def test_runs_list_in_every_format(runs: dict[str, str], fmt: str) -> None:
    done = cli("runs", "list", "-o", fmt)
    assert done.code == OK, done
    out = parsed(done, fmt)
    ids = set(runs.values())
    if fmt == "ids":
        assert set(out.split()) == ids
    elif fmt == "table":
        assert "RUN ID" in out and all(i in out for i in ids) and "waiting" in out
    else:
        assert {r["run_id"] for r in out} == ids
        assert {r["status"] for r in out} == {"completed", "failed", "waiting", "sleeping"}
    filtered = cli("-o", fmt, "runs", "list", "--workflow", "clir.th*", "--status", "completed")
    assert filtered.code == OK, filtered
    if fmt == "ids":
        assert set(filtered.out.split()) == {runs["completed"], runs["completed2"]}


def test_runs_list_pages_with_a_cursor_on_stderr(runs: dict[str, str]) -> None:
    first = cli("runs", "list", "--limit", "3", "-o", "ids")
    assert first.code == OK and len(first.out.split()) == 3
    cursor = first.err.split("--cursor ")[1].split()[0]
    rest = cli("runs", "list", "--limit", "3", "-o", "ids", "--cursor", cursor)
    assert rest.code == OK and "--cursor" not in rest.err
    assert set(first.out.split()) | set(rest.out.split()) == set(runs.values())
    assert cli("runs", "list", "--key", "ask-1", "-o", "ids").out.split() == [runs["waiting"]]


@pytest.mark.parametrize("fmt", ["table", "json", "jsonl", "ids"])
def test_runs_show_in_every_format(runs: dict[str, str], fmt: str) -> None:
    done = cli("runs", "show", runs["completed"], "-o", fmt)
    assert done.code == OK, done
    out = parsed(done, fmt)
    if fmt == "table":
        assert "clir.three" in out and "journal" in out and "clir.add" in out
        assert "progress" in out and "output" in out
    elif fmt == "ids":
        assert out.split() == [runs["completed"]]
    else:
        document = out if fmt == "json" else out[0]
        assert document["run"]["output"] == 3 and len(document["steps"]) == 4
    waiting = cli("runs", "show", runs["waiting"], "-o", fmt)
    assert waiting.code == OK
    if fmt == "table":
        assert "waiting for signal 'approved'" in waiting.out
    sleeping = cli("runs", "show", runs["sleeping"], "-o", "json")
    assert sleeping.json()["waiting_for"].startswith("sleeping until ")
    failed = cli("runs", "show", runs["failed"], "-o", fmt)
    assert failed.code == FAILED
    if fmt == "table":
        assert "error: ValueError: it broke" in failed.out and "Traceback" in failed.out


@pytest.mark.parametrize("fmt", ["table", "json", "jsonl"])
def test_steps_history_and_events(runs: dict[str, str], fmt: str) -> None:
    run_id = runs["completed"]
    steps = cli("runs", "steps", run_id, "-o", fmt)
    assert steps.code == OK, steps
    history = cli("runs", "history", run_id, "-o", fmt)
    assert history.code == OK, history
    events = cli("runs", "events", run_id, "-o", fmt)
    assert events.code == OK, events
    if fmt == "table":
        assert steps.out.count("clir.add") == 3
        assert "created" in history.out and "finished" in history.out
        assert "progress" in events.out and '{"done": 2}' in events.out
    elif fmt == "json":
        assert [s["kind"] for s in steps.json()] == ["step", "step", "event", "step"]
        kinds = [e["kind"] for e in history.json()]
        assert kinds[0] == "created" and kinds[-1] == "finished"
        assert events.json()[0]["value"] == {"done": 2}
    else:
        assert len(steps.lines()) == 4 and history.lines()[0]["kind"] == "created"
        assert events.lines()[0]["key"] == "progress"
    one = cli("runs", "events", run_id, "progress", "-o", fmt)
    assert one.code == OK and json.loads(one.out) == {"done": 2}  # the value alone, always
    assert cli("runs", "steps", run_id, "-o", "ids").code == USAGE  # lists no run ids


def test_result_exit_codes(runs: dict[str, str]) -> None:
    done = cli("runs", "result", runs["completed"])
    assert done.code == OK and done.json() == 3
    failed = cli("runs", "result", runs["failed"])
    assert failed.code == FAILED and "it broke" in failed.err
    pending = cli("runs", "result", runs["waiting"])
    assert pending.code == NOT_ENDED and "no result yet" in pending.err
    unserved = cli("runs", "result", runs["waiting"], "--wait", "--timeout", "5")
    assert unserved.code == REFUSED and "nothing would execute it" in unserved.err
    missing = cli("runs", "result", "no-such-run")
    assert missing.code == NOT_FOUND and missing.err.startswith("error: ")


def test_reads_of_unknown_runs_are_not_found(runs: dict[str, str]) -> None:
    for command in ("show", "steps", "history", "events", "result"):
        done = cli("runs", command, "no-such-run")
        assert done.code == NOT_FOUND, (command, done)
        assert done.err.count("\n") == 1 and "no-such-run" in done.err


@pytest.mark.parametrize("fmt", ["table", "json", "jsonl"])
def test_db_status_and_config(runs: dict[str, str], fmt: str) -> None:
    status = cli("db", "status", "-o", fmt)
    assert status.code == OK, status
    if fmt == "json":
        data = status.json()
        assert data["schema"] == "current" and data["runs"]["completed"] == 2
    elif fmt == "table":
        assert "current" in status.out and "completed runs" in status.out
    config = cli("config", "-o", fmt)
    assert config.code == OK, config
    if fmt == "json":
        assert config.json()["store"]["source"] == "env DURABLY_STORE"
    elif fmt == "table":
        assert "env DURABLY_STORE" in config.out
