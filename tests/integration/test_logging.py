"""Logs: the worker's lines about its runs, the run's context on records, replay-safe
workflow logging, JSON lines from ``durably worker``."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import durably
from durably import logs
from durably.testing import TestEngine

SRC = str(Path(__file__).resolve().parents[2] / "src")
app_log = logging.getLogger("tests.app")
flow_log = durably.get_logger("tests.flow")


class Collect(logging.Handler):
    """Keeps the records of the loggers it is attached to, the run's context filled in."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.addFilter(logs.RunContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def collected() -> object:
    handler = Collect()
    loggers = [logging.getLogger(n) for n in ("durably.worker", "tests.app", "tests.flow")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


attempts: dict[str, int] = {}


@durably.step(retries=2, backoff=durably.Backoff(initial=0.01, factor=1, jitter=0))
def flaky(key: str) -> None:
    app_log.info("attempting %s", key)
    attempts[key] = attempts.get(key, 0) + 1
    raise ValueError(f"broken {key}")


@durably.workflow(name="tests.logging.fails")
def fails(key: str) -> None:
    flaky(key)


@durably.step
def noted() -> int:
    app_log.info("inside the step")
    return 1


@durably.workflow(name="tests.logging.replays")
def replays() -> int:
    flow_log.info("before the sleeps")
    total = noted()
    for i in range(3):
        durably.sleep(1.05)  # long enough to suspend: each wake-up replays the journal
        flow_log.info("after sleep %d", i)
    return total


def test_a_failed_run_is_logged_with_its_retries_and_traceback(
    kit: TestEngine, collected: Collect
) -> None:
    engine = kit  # the retries' backoff on a virtual clock
    key = uuid.uuid4().hex
    handle = engine.start_workflow(fails, key)
    with pytest.raises(durably.WorkflowFailed):
        handle.result(timeout=30)
    assert engine.hooks.flush()  # the worker's lines are written on its hooks thread
    ours = [r for r in collected.records if getattr(r, "run_id", None) == handle.run_id]
    worker = [r for r in ours if r.name == "durably.worker"]
    retries = [r for r in worker if "retrying" in r.getMessage()]
    assert len(retries) == 2 and all(r.levelno == logging.INFO for r in retries)
    assert [r.attempt for r in retries] == [1, 2]  # type: ignore[attr-defined]
    (failed,) = [r for r in worker if r.levelno == logging.ERROR]
    text = failed.getMessage()
    assert "failed" in text and f"ValueError: broken {key}" in text and "Traceback" in text
    assert failed.workflow == "tests.logging.fails"  # type: ignore[attr-defined]
    # The application's own lines inside the step carry the run's context.
    inside = [r for r in ours if r.name == "tests.app"]
    assert len(inside) == 3 == attempts[key]
    assert [r.attempt for r in inside] == [1, 2, 3]  # type: ignore[attr-defined]
    assert {r.step for r in inside} == {flaky.name}  # type: ignore[attr-defined]
    assert all(r.worker_id and r.workflow == "tests.logging.fails" for r in inside)  # type: ignore[attr-defined]
    # The argument is in the error's message (the workflow put it there), nowhere else.
    lines = [r.getMessage() for r in worker if r.levelno == logging.INFO]
    assert all(key not in line for line in lines if "failed (" not in line)


@durably.workflow(name="tests.logging.quick")
def quick() -> int:
    return noted()


def test_the_stop_line_comes_after_the_runs_lines(tmp_path: Path, collected: Collect) -> None:
    with durably.Engine(str(tmp_path / "stop.db")) as engine:
        handles = [engine.start_workflow(quick) for _ in range(20)]
        for handle in handles:
            handle.result(timeout=30)
    lines = [r.getMessage() for r in collected.records if r.name == "durably.worker"]
    completed = [i for i, line in enumerate(lines) if " completed after " in line]
    (stopped,) = [i for i, line in enumerate(lines) if " stopped; " in line]
    assert len(completed) == 20 and max(completed) < stopped


def test_workflow_lines_appear_once_across_replays(kit: TestEngine, collected: Collect) -> None:
    engine = kit  # the sleeps on a virtual clock
    handle = engine.start_workflow(replays)
    assert handle.result(timeout=30) == 1
    assert engine.hooks.flush()
    lines = [
        r.getMessage()
        for r in collected.records
        if r.name == "tests.flow" and getattr(r, "run_id", None) == handle.run_id
    ]
    assert lines == ["before the sleeps", "after sleep 0", "after sleep 1", "after sleep 2"]
    resumed = [
        r
        for r in collected.records
        if r.name == "durably.worker"
        and getattr(r, "run_id", None) == handle.run_id
        and "resumed" in r.getMessage()
    ]
    assert len(resumed) == 3  # it did replay three times


def test_records_outside_runs_have_empty_context(collected: Collect) -> None:
    app_log.info("not in a run")
    (record,) = [r for r in collected.records if r.getMessage() == "not in a run"]
    assert all(getattr(record, name) is None for name in logs.FIELDS)


def test_json_lines_carry_their_fields() -> None:
    formatter = logs.JsonFormatter()
    record = logging.LogRecord("durably.worker", logging.INFO, __file__, 1, "hi %s", ("x",), None)
    record.run_id = "r1"
    out = json.loads(formatter.format(record))
    assert out["message"] == "hi x" and out["run_id"] == "r1" and out["level"] == "INFO"
    assert "step" not in out  # fields not set are left out
    with pytest.raises(ValueError, match="log format"):
        logs.configure("INFO", "yaml")


FLOWS = """
import durably

@durably.workflow(name="{name}")
def double_it(n: int) -> int:
    durably.get_logger("app").info("doubling")
    return n * 2 + 1
"""


def test_worker_prints_json_lines(tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    flows, name, db = f"flows_{suffix}", f"logs.double.{suffix}", str(tmp_path / "w.db")
    (tmp_path / f"{flows}.py").write_text(FLOWS.format(name=name))
    command = ["worker", "--store", db, "--app", flows, "--log-format", "json"]
    worker = subprocess.Popen(
        [sys.executable, "-m", "durably.cli", *command],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=SRC),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first: list[str] = []
    try:
        assert worker.stderr is not None
        while not first or "started: store" not in first[-1]:  # it is running
            first.append(worker.stderr.readline())
            assert first[-1], "the worker ended before it started"
        engine = durably.Engine(db, execute=False)
        try:
            run = engine.start_workflow(name, 12345)
            assert run.result(timeout=30) == 24691
        finally:
            engine.close()
        worker.terminate()
        out, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0 and out == ""  # nothing but JSON, all of it on stderr
    lines = [json.loads(line) for line in [*first, *err.splitlines()] if line.strip()]
    started = [x for x in lines if "started: store" in x["message"]]
    assert started and started[0]["logger"] == "durably.worker"
    about = [x for x in lines if x.get("run_id") == run.run_id]
    assert {x["message"] for x in about if x["logger"] == "app"} == {"doubling"}
    (app_line,) = [x for x in about if x["logger"] == "app"]
    assert app_line["workflow"] == name and app_line["worker_id"]
    assert any("completed" in x["message"] for x in about if x["logger"] == "durably.worker")
    assert "12345" not in json.dumps(lines)  # no arguments (nor results) at INFO
    assert any("stopped" in x["message"] for x in lines if x["logger"] == "durably.worker")
