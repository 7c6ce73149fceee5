"""Running a step's body: in place, or watched for its timeout and its heartbeats.

A body with neither a timeout nor a heartbeat timeout runs in the caller's thread
(or task): nothing is spent on watching it. Otherwise a sync body runs on a
thread of its own and an async one in a task, and the caller waits for it in
slices. A body past its timeout, or silent for longer than its heartbeat
timeout, is abandoned: its attempt is marked (``durably.is_cancelled()`` turns
true, ``durably.heartbeat()`` raises :class:`~durably.StepTimeout`), an async
body is cancelled, and the retry waits up to the step's ``timeout_grace`` for
the body to stop. A sync body that ignores all of this cannot be stopped (Python
cannot kill a thread): after the grace the retry starts while it still runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Awaitable
from concurrent.futures import Future
from typing import Any, cast

from durably.clock import Clock
from durably.current import Attempt, step_attempt, workflow_run
from durably.errors import StepTimeout
from durably.registry import Step


def invoke_sync(
    step: Step[Any, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    attempt: Attempt,
    clock: Clock,
) -> Any:
    """Run a sync body and return its result (or raise its error, or StepTimeout)."""
    if step.timeout is None and step.heartbeat_timeout is None:
        tokens = workflow_run.set(None), step_attempt.set(attempt)  # steps in a body are plain
        try:
            return step.fn(*args, **kwargs)
        finally:
            workflow_run.reset(tokens[0])
            step_attempt.reset(tokens[1])
    future: Future[Any] = Future()

    def body() -> None:
        workflow_run.set(None)
        step_attempt.set(attempt)
        try:
            future.set_result(step.fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)

    context = contextvars.copy_context()
    threading.Thread(
        target=context.run, args=(body,), name=f"durably-step-{step.name}", daemon=True
    ).start()
    try:
        while True:
            with contextlib.suppress(TimeoutError):
                return clock.result_within(future, _next_look(step, attempt, clock))
            _check(step, attempt, clock)  # outside the except: the poll is not its cause
    except StepTimeout:
        attempt.abandoned = True
        # Let the body notice and stop before its retry starts beside it; its outcome
        # no longer matters: the attempt timed out.
        with contextlib.suppress(BaseException):
            clock.result_within(future, step.timeout_grace)
        raise


async def invoke_async(
    step: Step[Any, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    attempt: Attempt,
    clock: Clock,
) -> Any:
    """Await an async body's result (or its error, or StepTimeout)."""
    tokens = workflow_run.set(None), step_attempt.set(attempt)
    try:
        body = cast(Awaitable[Any], step.fn(*args, **kwargs))
        if step.timeout is None and step.heartbeat_timeout is None:
            return await body
        task = asyncio.ensure_future(body)  # a copy of this context: the attempt is set
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    return await clock.within_async(
                        asyncio.shield(task), _next_look(step, attempt, clock)
                    )
                _check(step, attempt, clock)
        except StepTimeout:
            attempt.abandoned = True
            task.cancel()
            with contextlib.suppress(BaseException):  # its grace to run its finally blocks
                await clock.within_async(asyncio.shield(task), step.timeout_grace)
            raise
        finally:
            if not task.done():  # this wait was itself cancelled (the engine stopping)
                task.cancel()
    finally:
        workflow_run.reset(tokens[0])
        step_attempt.reset(tokens[1])


def _next_look(step: Step[Any, Any], attempt: Attempt, clock: Clock) -> float:
    """How long to wait before the timeout or the heartbeat deadline could have passed."""
    now = clock.monotonic()
    waits = []
    if step.timeout is not None:
        waits.append(attempt.started + step.timeout - now)
    if step.heartbeat_timeout is not None:
        waits.append(attempt.beat + step.heartbeat_timeout - now)
    return max(0.0, min(waits))


def _check(step: Step[Any, Any], attempt: Attempt, clock: Clock) -> None:
    now = clock.monotonic()
    if step.timeout is not None and now >= attempt.started + step.timeout:
        raise StepTimeout(f"step {step.name!r} timed out after {step.timeout:g}s")
    if step.heartbeat_timeout is not None and now >= attempt.beat + step.heartbeat_timeout:
        raise StepTimeout(
            f"step {step.name!r} sent no heartbeat for {step.heartbeat_timeout:g}s "
            "(its heartbeat_timeout): taken as hung"
        )
