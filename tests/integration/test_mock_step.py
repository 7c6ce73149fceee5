"""engine.mock_step: a step's outcome given instead of its body, journaled and retried
like the body's, for the runs this engine executes."""

from __future__ import annotations

import pytest

import durably

BODIES: list[str] = []


@durably.step(retries=2, backoff=durably.Backoff(initial=0.01, factor=1, jitter=0))
def charge(order_id: str, cents: int) -> str:
    BODIES.append(order_id)
    return f"receipt-{order_id}"


@durably.step
async def ship(order_id: str) -> str:
    BODIES.append(f"ship-{order_id}")
    return f"tracking-{order_id}"


@durably.workflow(name="mocks.checkout")
def checkout(order_id: str) -> str:
    try:
        return charge(order_id, 1999)
    except durably.StepFailed as failed:
        return f"declined: {failed.error_type}"


@durably.workflow(name="mocks.shipping")
async def shipping(order_id: str) -> str:
    return await ship(order_id)


def test_a_mocked_step_returns_what_it_is_given(engine: durably.Engine) -> None:
    BODIES.clear()
    with engine.mock_step(charge, returns="receipt-fake") as mock:
        handle = engine.start_workflow(checkout, "o-1")
        assert handle.result(timeout=15) == "receipt-fake"
    assert BODIES == []  # the body never ran
    assert mock.calls == [(("o-1", 1999), {})]
    (step,) = engine.steps(handle.run_id)
    assert (step.name, step.output, step.status) == ("charge", "receipt-fake", "completed")


def test_a_mocked_failure_is_retried_by_the_steps_policy(engine: durably.Engine) -> None:
    BODIES.clear()
    with engine.mock_step(charge, raises=ConnectionError("gateway down")) as mock:
        handle = engine.start_workflow(checkout, "o-2")
        assert handle.result(timeout=15) == "declined: ConnectionError"
    assert len(mock.calls) == 3 and BODIES == []  # retries=2: three attempts
    (step,) = engine.steps(handle.run_id)
    assert step.status == "failed" and step.attempts == 3
    assert step.error is not None  # raised afresh each time: one attempt's frames, not three
    assert step.error.traceback.count("ConnectionError: gateway down") == 1
    assert step.error.traceback.count("mocking.py") == 1


def test_an_error_type_is_raised_as_an_instance_and_mocks_end_with_the_block(
    engine: durably.Engine,
) -> None:
    BODIES.clear()
    with engine.mock_step(charge, raises=TimeoutError):
        assert engine.start_workflow(checkout, "o-3").result(timeout=15) == (
            "declined: TimeoutError"
        )
    assert engine.start_workflow(checkout, "o-4").result(timeout=15) == "receipt-o-4"
    assert BODIES == ["o-4"]  # the real body again


def test_an_async_step_is_mocked_as_an_async_step(engine: durably.Engine) -> None:
    BODIES.clear()
    with engine.mock_step(ship, returns="tracking-fake") as mock:
        assert engine.start_workflow(shipping, "o-5").result(timeout=15) == "tracking-fake"
    assert mock.calls == [(("o-5",), {})] and BODIES == []


def test_bad_mocks_are_refused(engine: durably.Engine) -> None:
    with pytest.raises(TypeError, match="one of returns= or raises="):
        engine.mock_step(charge).__enter__()
    with pytest.raises(TypeError, match="one of returns= or raises="):
        engine.mock_step(charge, returns=1, raises=ValueError).__enter__()
    with pytest.raises(TypeError, match=r"a @durably\.step"):
        engine.mock_step(checkout, returns=1).__enter__()  # type: ignore[arg-type]
    for wrong in ("boom", 42, int):
        with pytest.raises(TypeError, match="raises= an exception or its type"):
            engine.mock_step(charge, raises=wrong).__enter__()  # type: ignore[arg-type]
    with (
        engine.mock_step(charge, returns="x"),
        pytest.raises(ValueError, match="mocked already"),
    ):
        engine.mock_step(charge, returns="y").__enter__()
