"""Nothing waits silently: live workers are known, a run nobody executes says why, and
waiting for a run nothing would ever execute fails at once."""

from __future__ import annotations

import logging
import time

import pytest

import durably
from durably import handle as handles


@durably.workflow(name="wk.known")
def known(x: int) -> int:
    return x


def test_live_workers_are_announced_and_forgotten(store_url: str) -> None:
    with durably.Engine(store_url, queues=["wk.q"], workers=3, workflows=["wk.*"]) as engine:
        executor = engine.executor
        assert executor is not None
        (me,) = [w for w in engine.store.live_workers() if w.worker_id == executor.owner]
        assert me.queues == ("wk.q",) and "wk.known" in me.workflows
        assert me.concurrency == 3 and me.patterns == ("wk.*",)
        owner = executor.owner
    with durably.Engine(store_url, execute=False) as client:
        assert owner not in [w.worker_id for w in client.store.live_workers()]


def test_a_run_nobody_executes_says_why(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handles, "UNSERVED_GRACE", 0.3)  # a late import's announcement
    with durably.Engine(store_url, execute=False, poll_interval=0.05) as client:
        handle = client.start_workflow("wk.unknown", 1)
        reason = client.get_run(handle.run_id).blocked_reason
        assert reason is not None and "no worker is running" in reason
        with pytest.raises(durably.NoWorker, match="nothing would execute it"):
            handle.result(timeout=10)
        with durably.Engine(store_url, poll_interval=0.05, queues=["wk.other"]) as worker:
            reason = worker.get_run(handle.run_id).blocked_reason
            assert reason is not None and "no live worker executes workflow 'wk.unknown'" in reason
            queued = client.start_workflow("wk.known", 5)
            reason = worker.get_run(queued.run_id).blocked_reason
            assert reason is not None and "serves queue 'default'" in reason
            # Waiting for either says so too, after the grace: a live worker that
            # executes another workflow, or serves another queue, is none.
            for unserved in (handle, client.handle(queued.run_id)):
                with pytest.raises(durably.NoWorker, match=r"no live worker (executes|that)"):
                    unserved.result(timeout=10)
        served = durably.Engine(store_url, poll_interval=0.05)
        with served:
            assert queued.result(timeout=10) == 5
            assert served.get_run(queued.run_id).blocked_reason is None


def test_a_worker_says_once_that_runs_wait_unserved(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="durably.worker")
    with durably.Engine(store_url, execute=False) as client:
        client.start_workflow("wk.nobody", 1)
    with durably.Engine(store_url, poll_interval=0.05):
        deadline = time.monotonic() + 15
        while "'wk.nobody'" not in caplog.text:
            assert time.monotonic() < deadline, "no word of the waiting run"
            time.sleep(0.05)
    assert caplog.text.count("'wk.nobody'") == 1
