"""Whatever user code raises, the run ends (failed, described as well as can be) and the
engine lives on: docs/guarantees.md, battery item 13."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

import durably


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken too")


@dataclass
class Half:
    """A dataclass whose field ``b`` is never set: encoding it raises AttributeError."""

    a: int
    b: int = field(init=False)


@durably.workflow(name="bad.unprintable_workflow")
def unprintable_workflow() -> None:
    raise Unprintable()


@durably.step(retries=0)
def unprintable_step() -> None:
    raise Unprintable()


@durably.workflow(name="bad.unprintable_step")
def unprintable_in_step() -> None:
    unprintable_step()


@durably.step
def half_step() -> Half:
    return Half(1)


@durably.workflow(name="bad.half_step")
def half_in_step() -> None:
    half_step()


@durably.workflow(name="bad.half_result")
def half_result() -> Half:
    return Half(2)


@durably.workflow(name="bad.echo")
def echo(value: Any) -> Any:
    return value


@durably.step(timeout="5s")
async def interrupts_with_timeout() -> None:
    raise KeyboardInterrupt("pressed inside a step")


@durably.workflow(name="bad.interrupt_async_step")
async def interrupt_async_step() -> None:
    await interrupts_with_timeout()


async def exits() -> None:
    await asyncio.sleep(0)
    raise SystemExit(3)


@durably.step
async def fine_async(x: int) -> int:
    return x + 1


@durably.workflow(name="bad.exit_in_gather")
async def exit_in_gather() -> list[object]:
    return list(await asyncio.gather(fine_async(1), exits()))


@durably.step
def interrupts() -> None:
    raise KeyboardInterrupt


@durably.workflow(name="bad.interrupt_sync_step")
def interrupt_sync_step() -> None:
    interrupts()


@durably.workflow(name="bad.interrupt_workflow")
def interrupt_workflow() -> None:
    raise KeyboardInterrupt


@durably.workflow(name="bad.healthy_async")
async def healthy_async(x: int) -> int:
    return await fine_async(x)


def _failure(engine: durably.Engine, wf: durably.Workflow[[], Any]) -> durably.ErrorInfo:
    handle = engine.start_workflow(wf)
    with pytest.raises(durably.WorkflowFailed) as failed:
        handle.result(timeout=15)
    run = engine.get_run(handle.run_id)
    assert run.status is durably.RunStatus.FAILED, "the run must end, not stay running"
    assert run.error is not None
    return failed.value.error


def test_an_exception_whose_str_raises_fails_the_run(engine: durably.Engine) -> None:
    for wf in (unprintable_workflow, unprintable_in_step):
        error = _failure(engine, wf)
        assert "Unprintable" in error.type + error.message
        assert "str() raised RuntimeError" in error.message
        assert "raise Unprintable()" in error.traceback


def test_a_value_that_breaks_its_encoding_fails_cleanly(engine: durably.Engine) -> None:
    for wf in (half_in_step, half_result):
        error = _failure(engine, wf)
        assert "SerializationError" in error.type + error.message
        assert "AttributeError" in error.message
    with pytest.raises(durably.SerializationError, match="AttributeError"):
        engine.start_workflow(echo, Half(3))
    assert [r.workflow for r in engine.list_runs(workflow="bad.echo")] == []


def test_interrupts_inside_runs_fail_them_and_the_engine_lives_on(engine: durably.Engine) -> None:
    cases: dict[durably.Workflow[[], Any], str] = {
        interrupt_async_step: "KeyboardInterrupt raised",
        exit_in_gather: "SystemExit raised",
        interrupt_sync_step: "KeyboardInterrupt raised",
        interrupt_workflow: "KeyboardInterrupt",
    }
    for wf, said in cases.items():
        error = _failure(engine, wf)
        assert said in error.type + ": " + error.message, (wf, error)
    # Every async run shares the engine's event loop: it still runs them.
    assert engine.start_workflow(healthy_async, 41).result(timeout=10) == 42

    async def from_a_loop() -> int:
        handle = await engine.start_workflow_async(healthy_async, 1)
        result: int = await handle.result_async(timeout=10)
        return result

    assert asyncio.run(from_a_loop()) == 2
