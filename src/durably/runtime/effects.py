"""Effects: the logic of a durable call as a generator of effects (a plan), and its drivers.

A durable call (a step, a timer, a signal wait ...) is written once as a
generator that yields :class:`Invoke`, :class:`Sleep` and :class:`Write`
effects. :func:`drive_sync` performs them blocking, :func:`drive_async` awaits
them: one implementation behind the sync and the async API. Sleeps and the
backoff of writes the database failed follow the committer's clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from durably.clock import Clock
from durably.committer import Committer
from durably.current import Attempt
from durably.errors import StoreClosed, StoreError
from durably.registry import Step
from durably.runtime.bodies import invoke_async, invoke_sync
from durably.stores.base import Transaction

T = TypeVar("T")

#: Seconds a run keeps retrying a write the database failed (disk full, restart).
STORE_RETRY_FOR = 30.0


@dataclass(frozen=True, slots=True)
class Invoke:
    """Run one attempt of a step's body (see :mod:`durably.runtime.bodies`)."""

    step: Step[Any, Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    attempt: Attempt


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class Write:
    op: Callable[[Transaction], Any]
    #: Called when the database fails this write (the run's execution is then abandoned).
    on_store_error: Callable[[], None] | None = None


Effect = Invoke | Sleep | Write
Plan = Generator[Effect, Any, T]


# -- drivers: perform a plan's effects, blocking or awaiting --------------------------
def drive_sync(committer: Committer, plan: Plan[T]) -> T:
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = plan.send(value) if error is None else plan.throw(error)
        except StopIteration as stop:
            return cast(T, stop.value)
        value, error = None, None
        try:
            if isinstance(effect, Write):
                value = _written(effect, committer)
            elif isinstance(effect, Sleep):
                committer.clock.sleep(effect.seconds)
            else:
                value = invoke_sync(*_call(effect), committer.clock)
        except BaseException as exc:  # handed to the plan, which decides
            error = exc


async def drive_async(committer: Committer, plan: Plan[T]) -> T:
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = plan.send(value) if error is None else plan.throw(error)
        except StopIteration as stop:
            return cast(T, stop.value)
        value, error = None, None
        try:
            if isinstance(effect, Write):
                value = await _written_async(effect, committer)
            elif isinstance(effect, Sleep):
                await committer.clock.sleep_async(effect.seconds)
            elif effect.step.is_async:
                value = await invoke_async(*_call(effect), committer.clock)
            else:  # a sync step of an async workflow (map, compensation) runs on a thread
                value = await asyncio.to_thread(invoke_sync, *_call(effect), committer.clock)
        except BaseException as exc:
            error = exc


def drive_on_loop(committer: Committer, plan: Plan[T], done: Callable[[bool, Any], None]) -> None:
    """Perform a plan made of writes only from callbacks on the engine's loop (no
    task): each write joins the loop's current batch. ``done`` gets the outcome.

    For starts handed over from other threads; like :func:`drive_async`, a write
    the plan gave no store-failure handler is not retried.
    """

    def resume(ok: bool, value: Any) -> None:
        try:
            effect = plan.send(value) if ok else plan.throw(value)
        except StopIteration as stop:
            done(True, stop.value)
            return
        except BaseException as exc:
            done(False, exc)
            return
        if not isinstance(effect, Write) or effect.on_store_error is not None:
            plan.close()
            done(False, TypeError(f"drive_on_loop performs plain writes only, not {effect!r}"))
            return
        committer.in_turn(effect.op, resume)

    resume(True, None)


class _StoreRetry:
    """A run's write the database failed is retried with backoff (the step's result
    is in hand: no need to run it again) until ``STORE_RETRY_FOR`` runs out; then
    the run's execution is abandoned and the run released for a later replay."""

    def __init__(self, effect: Write, clock: Clock) -> None:
        self.effect = effect
        self.clock = clock
        self.deadline = clock.monotonic() + STORE_RETRY_FOR
        self.pause = 0.05

    def next_pause(self, error: StoreError) -> float:
        closed = isinstance(error, StoreClosed)
        if self.effect.on_store_error is None or closed or self.clock.monotonic() > self.deadline:
            if self.effect.on_store_error is not None:
                self.effect.on_store_error()
            raise error
        pause, self.pause = self.pause, min(self.pause * 2, 1.0)
        return pause


def _written(effect: Write, committer: Committer) -> Any:
    retry: _StoreRetry | None = None
    while True:
        try:
            return committer.run(effect.op)
        except StoreError as exc:
            retry = retry or _StoreRetry(effect, committer.clock)
            committer.clock.sleep(retry.next_pause(exc))


async def _written_async(effect: Write, committer: Committer) -> Any:
    retry: _StoreRetry | None = None
    while True:
        try:
            return await committer.run_async(effect.op)
        except StoreError as exc:
            retry = retry or _StoreRetry(effect, committer.clock)
            await committer.clock.sleep_async(retry.next_pause(exc))


def _call(
    effect: Invoke,
) -> tuple[Step[Any, Any], tuple[Any, ...], dict[str, Any], Attempt]:
    return effect.step, effect.args, effect.kwargs, effect.attempt
