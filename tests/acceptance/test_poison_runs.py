"""A run whose execution kills its worker every time is failed after a few recoveries,
instead of being claimed again forever; ``retry`` revives it. SIGKILL, real processes,
on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import durably
from tests import postgres
from tests.acceptance.harness import child_env

WORKER = """
import os, signal, sys
import durably

@durably.step
def fine():
    return "ok"

@durably.step
def deadly():
    if not os.path.exists(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)  # what a segfault or the OOM killer does
    return "survived"

@durably.workflow(name="poison.run")
def run():
    return [fine(), deadly()]

with durably.Engine(sys.argv[1], poll_interval=0.05, max_recoveries=3) as engine:
    handle = engine.with_options(run_id="poison").start_workflow(run)
    try:
        print(handle.result(timeout=30))
    except durably.WorkflowFailed as exc:
        print("FAILED", exc.error_type)
"""


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    if request.param == "sqlite":
        yield str(tmp_path / "poison.db")
        return
    postgres.require()
    name = postgres.new_schema("poison")
    yield postgres.schema_url(name)
    postgres.drop_schema(name)


def _worker(url: str, cure: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WORKER, url, str(cure)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_run_that_kills_its_workers_is_failed_then_retried(url: str, tmp_path: Path) -> None:
    cure = tmp_path / "cured"
    outcomes = []
    for _ in range(8):  # each process recovers the run from the one that died before
        done = _worker(url, cure)
        outcomes.append(done.returncode)
        if done.returncode == 0:
            break
    # The first process completed "fine" before it was killed: the first recovery made
    # progress. The next ones did not: the 4th recovery without progress (over 3) fails it.
    assert outcomes == [-9] * 5 + [0], outcomes
    assert done.stdout.strip() == "FAILED RecoveryLimitExceeded", done.stdout + done.stderr
    with durably.Engine(url, poll_interval=0.05) as engine:
        run = engine.get_run("poison")
        assert run.status is durably.RunStatus.FAILED
        assert run.error is not None and "recovered 4 times" in run.error.message
        assert [s.name for s in engine.steps("poison")] == ["fine"]  # done once, kept
        cure.touch()
    with durably.Engine(url, poll_interval=0.05, max_recoveries=3) as engine:
        # The same workflow is registered in this process, below: retry runs it here.
        assert engine.retry("poison").result(timeout=30) == ["ok", "survived"]


# The workflow of WORKER, for the retry in this process (its step no longer kills).
@durably.step
def fine() -> str:
    return "ok"


@durably.step
def deadly() -> str:
    return "survived"


@durably.workflow(name="poison.run")
def run() -> list[str]:
    return [fine(), deadly()]
