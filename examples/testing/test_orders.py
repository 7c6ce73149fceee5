"""Tests of orders.py: a month of waiting in milliseconds, a crash at every checkpoint."""

from __future__ import annotations

import orders
import pytest

import durably
from durably.testing import TestEngine, crash_sweep, replay_check


def test_an_order_never_paid_expires_after_a_week(durably_engine: TestEngine) -> None:
    handle = durably_engine.start_workflow(orders.checkout, "o-1", 1999)
    assert handle.result(timeout=10) == "expired"  # 7 days of this engine's clock
    assert "reminder o-1" in orders.outbox


def test_a_paid_order_completes_after_the_return_window() -> None:
    engine = TestEngine(auto_skip=False)
    try:
        handle = engine.start_workflow(orders.checkout, "o-2", 500)
        engine.run_until_idle()  # waiting for "paid"
        engine.clock.advance("2d")
        engine.send_signal(handle.run_id, "paid", {"by": "card"})
        engine.run_until_idle()  # charged, sleeping through the return window
        assert engine.get_run(handle.run_id).status == "sleeping"
        engine.clock.advance("30d")
        assert handle.result(timeout=10) == "receipt-o-2-500"
    finally:
        engine.close()


def test_a_charge_that_keeps_failing_is_retried_an_hour_apart(
    durably_engine: TestEngine,
) -> None:
    with durably_engine.mock_step(orders.charge, raises=ConnectionError("gateway down")):
        handle = durably_engine.start_workflow(orders.checkout, "o-3", 700)
        durably_engine.send_signal(handle.run_id, "paid", {"by": "card"})
        with pytest.raises(durably.WorkflowFailed, match="gateway down"):
            handle.result(timeout=10)
    step = next(s for s in durably_engine.steps(handle.run_id) if s.name.endswith("charge"))
    assert step.attempts == 4  # the first try and 3 retries, 1 hour apart


def test_checkout_survives_a_crash_at_every_checkpoint() -> None:
    orders.outbox.clear()
    report = crash_sweep(orders.checkout, "o-4", 900, effects=lambda: orders.outbox)
    assert report.ok
    print(report.table())


def test_recorded_runs_replay_on_this_code() -> None:
    engine = TestEngine("sqlite")
    try:
        engine.start_workflow(orders.checkout, "o-5", 100).result(timeout=10)
        report = replay_check(engine, workflows=["shop.*"], sample=100)
        assert report.ok, report.divergences
    finally:
        engine.close()
