"""The commands that change runs, against a real worker process that has the workflows
while this process (the CLI) imports none of them; on each backend."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from durably.cli.output import CANCELLED, FAILED, NOT_FOUND, OK, REFUSED, TIMED_OUT, USAGE
from tests.integration.cli import cli

SRC = str(Path(__file__).resolve().parents[2] / "src")

FLOWS = """\
import os
import time
from pathlib import Path

import durably

@durably.step
def add(a: int, b: int) -> int:
    return a + b

@durably.step(retries=0)
def check(marker: str) -> str:
    if not Path(marker).exists():
        raise RuntimeError("no marker yet")
    return "fixed"

@durably.step
def slow(i: int) -> int:
    time.sleep(0.3)
    return i

@durably.workflow(name="clw.add", version="v7")
def add_them(a: int, b: int) -> int:
    return add(add(a, b), 0)

@durably.workflow(name="clw.asks")
def asks() -> object:
    return durably.wait_for_signal("approved", timeout="1h")

@durably.workflow(name="clw.naps")
def naps() -> str:
    durably.sleep("1h")
    return "rested"

@durably.workflow(name="clw.flaky")
def flaky(marker: str) -> str:
    return check(marker) + str(add(1, 1))

@durably.workflow(name="clw.slow")
def slow_one() -> int:
    return sum(slow(i) for i in range(3))
"""


@pytest.fixture
def worker(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A `durably worker` process with the workflows; this process has none of them."""
    module = f"clw_flows_{uuid.uuid4().hex[:8]}"
    app = tmp_path / "app"
    app.mkdir()
    (app / f"{module}.py").write_text(FLOWS)
    env = dict(os.environ, PYTHONPATH=SRC, DURABLY_POLL_INTERVAL="0.05")
    command = [sys.executable, "-m", "durably", "worker", "--app", module, "--store", store_url]
    proc = subprocess.Popen(
        [*command, "--worker-id", "cli-w1", "--concurrency", "4"],
        cwd=app,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    banner = proc.stdout.readline()
    assert "durably worker pid" in banner, banner + (proc.stderr.read() if proc.stderr else "")
    monkeypatch.setenv("DURABLY_STORE", store_url)
    monkeypatch.chdir(tmp_path)
    yield str(tmp_path)
    proc.terminate()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, out + err
    # The only tracebacks are those of runs that failed, as the worker logs them.
    records = re.split(r"\n(?=\d{4}-\d\d-\d\d )", err)
    assert not [r for r in records if "Traceback" in r and ") failed after " not in r], err


def start(*args: str) -> str:
    done = cli("start", *args)
    assert done.code == OK, done
    return done.out.strip()


def wait_status(run_id: str, status: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while cli("runs", "show", run_id, "-o", "json").json()["run"]["status"] != status:
        assert time.monotonic() < deadline, f"run {run_id} never became {status}"
        time.sleep(0.05)


def test_start_by_name_signal_and_results(worker: str) -> None:
    done = cli("start", "clw.add", "[2, 3]", "--wait")
    assert done.code == OK and done.json() == 5, done
    assert cli("start", "clw.add", '{"a": 1, "b": 2}', "--wait").json() == 3
    asked = start("clw.asks", "--key", "ask-1")
    assert start("clw.asks", "--key", "ask-1") == asked  # the same start is the same run
    wait_status(asked, "waiting")
    sent = cli("signal", asked, "approved", '{"ok": true}')
    assert sent.code == OK, sent
    assert cli("runs", "result", asked, "--wait", "--timeout", "20").json() == {"ok": True}
    marker = Path(worker) / "marker"
    failed = cli("start", "clw.flaky", f'["{marker}"]', "--wait", "--timeout", "20")
    assert failed.code == FAILED and "no marker yet" in failed.err, failed
    napping = cli("start", "clw.naps", "--wait", "--timeout", "0.5")
    assert napping.code == TIMED_OUT and "did not end within" in napping.err
    delayed = start("clw.add", "[1, 1]", "--delay", "1h", "--queue", "default")
    assert cli("runs", "show", delayed, "-o", "json").json()["waiting_for"].startswith("due at")


def test_signal_payload_from_a_file_and_stdin(worker: str) -> None:
    first, second = start("clw.asks"), start("clw.asks")
    (Path(worker) / "payload.json").write_text('[1, "two"]')
    wait_status(first, "waiting")
    wait_status(second, "waiting")
    assert cli("signal", first, "approved", "@payload.json").code == OK
    assert cli("signal", second, "approved", "-", stdin='{"from": "stdin"}').code == OK
    assert cli("runs", "result", first, "--wait", "--timeout", "20").json() == [1, "two"]
    assert cli("runs", "result", second, "--wait", "--timeout", "20").json() == {"from": "stdin"}


def test_follow_streams_the_journal_until_the_run_ends(worker: str) -> None:
    run_id = start("clw.slow")
    followed = cli("runs", "show", run_id, "--follow", "-o", "jsonl")
    assert followed.code == OK, followed
    lines = followed.lines()
    steps = [line["step"] for line in lines if "step" in line]
    assert [s["name"] for s in steps if s["status"] == "completed"] == ["slow"] * 3
    assert lines[-1]["run"]["status"] == "completed" and lines[-1]["run"]["output"] == 3
    again = cli("runs", "show", start("clw.slow"), "--follow")
    assert again.code == OK and again.out.count("slow") >= 3 and "completed" in again.out


def test_cancel_one_and_in_bulk(worker: str) -> None:
    sleepers = [start("clw.naps") for _ in range(4)]
    for run_id in sleepers:
        wait_status(run_id, "sleeping")
    dry = cli("runs", "cancel", "--where", "--workflow", "clw.naps", "--dry-run", "-o", "json")
    assert dry.code == OK and "4 run(s) match" in dry.err, dry
    assert dry.json() == {"matched": 4, "dry_run": True, "outcomes": {"would cancel": 4}}
    refused = cli("runs", "cancel", "--where", "--workflow", "clw.naps")
    assert refused.code == USAGE and "add --yes" in refused.err
    listed = cli("runs", "list", "--workflow", "clw.naps", "--status", "sleeping", "-o", "ids")
    assert sorted(listed.out.split()) == sorted(sleepers)  # nothing changed
    by_id = cli("runs", "cancel", sleepers[0], "no-such-run", "--dry-run", "-o", "json")
    assert by_id.code == NOT_FOUND and by_id.json()["dry_run"] is True, by_id
    assert by_id.json()["outcomes"] == {"would cancel": 1, "not found": 1}
    assert cli("runs", "show", sleepers[0], "-o", "json").json()["run"]["status"] == "sleeping"
    one = cli("runs", "cancel", sleepers[0], "--reason", "not needed")
    assert one.code == OK and "cancel requested" in one.out
    bulk = cli("runs", "cancel", "--where", "--workflow", "clw.naps", "--yes", "-o", "json")
    assert bulk.code == OK, bulk
    assert sum(bulk.json()["outcomes"].values()) == bulk.json()["matched"]
    for run_id in sleepers:
        wait_status(run_id, "cancelled")
    shown = cli("runs", "show", sleepers[0])
    assert shown.code == CANCELLED
    done = cli("start", "clw.add", "[1, 2]", "--wait")
    finished = cli("runs", "list", "--workflow", "clw.add", "-o", "ids").out.split()[0]
    assert done.code == OK
    assert cli("runs", "cancel", finished).code == REFUSED
    assert cli("runs", "cancel", "no-such-run").code == NOT_FOUND
    assert cli("runs", "cancel").code == USAGE
    assert cli("runs", "cancel", finished, "--where").code == USAGE


def test_retry_and_fork(worker: str) -> None:
    marker = Path(worker) / "marker"
    run_id = start("clw.flaky", f'["{marker}"]')
    wait_status(run_id, "failed")
    marker.touch()
    retried = cli("runs", "retry", run_id)
    assert retried.code == OK and "retried" in retried.out, retried
    assert cli("runs", "result", run_id, "--wait", "--timeout", "20").json() == "fixed2"
    assert cli("runs", "retry", run_id).code == REFUSED  # completed: nothing to retry
    for position in range(3):
        forked = cli("runs", "fork", run_id, "--from-step", str(position))
        assert forked.code == OK, forked
        new = forked.out.strip()
        assert cli("runs", "result", new, "--wait", "--timeout", "20").json() == "fixed2"
    assert cli("runs", "fork", run_id, "--from-step", "9").code == USAGE
    marker.unlink()
    failing = [start("clw.flaky", f'["{marker}"]') for _ in range(2)]
    for failed in failing:
        wait_status(failed, "failed")
    marker.touch()
    bulk = cli("runs", "retry", "--where", "--workflow", "clw.flaky", "--yes", "-o", "json")
    assert bulk.json()["outcomes"] == {"retried": 2}, bulk
    for failed in failing:
        assert cli("runs", "result", failed, "--wait", "--timeout", "20").json() == "fixed2"


def test_workers_and_workflows_show_the_live_worker(worker: str) -> None:
    workers = cli("workers", "-o", "json")
    assert workers.code == OK, workers
    (me,) = [w for w in workers.json() if w["worker_id"].endswith(":cli-w1")]
    assert me["concurrency"] == 4 and "clw.add" in me["workflows"]
    assert me["heartbeat_age"] < 30
    table = cli("workers")
    assert "cli-w1" in table.out and "HEARTBEAT" in table.out
    served = {w["workflow"]: w for w in cli("workflows", "-o", "json").json()}
    assert served["clw.add"]["version"] == "v7" and served["clw.add"]["workers"] >= 1
    assert served["clw.naps"]["version"].startswith("code-")
    assert "clw.asks" in cli("workflows", "-o", "jsonl").out


def test_db_purge_and_vacuum(worker: str) -> None:
    for n in range(3):
        assert cli("start", "clw.add", f"[{n}, 1]", "--wait").code == OK
    sleeper = start("clw.naps")
    wait_status(sleeper, "sleeping")
    time.sleep(0.1)
    dry = cli("db", "purge", "--older-than", "0s", "--dry-run", "-o", "json")
    assert dry.json() == {"dry_run": True, "runs": 3}, dry
    assert cli("db", "purge", "--older-than", "0s").code == USAGE  # needs --yes
    assert cli("runs", "list", "--workflow", "clw.add", "-o", "ids").out.split() != []
    done = cli("db", "purge", "--older-than", "0s", "--yes")
    assert done.code == OK and "deleted 3 run(s)" in done.out, done
    assert cli("runs", "list", "-o", "ids").out.split() == [sleeper]  # not ended: kept
    assert cli("db", "vacuum").code == OK
    assert cli("db", "purge", "--older-than", "0s", "--status", "running").code == USAGE
