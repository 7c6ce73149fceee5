"""One execution of a run, from its input to its conclusion, on a thread or on the loop.

The executor (:mod:`durably.worker.executor`) decides where a run executes and keeps
its bookkeeping; this module is what happens in between: decode the input, call the
workflow, unwind its compensations if it failed, and say how it ended (to the hooks,
and to the history when the run was lost).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any, TypeVar, cast

from durably.committer import Committer
from durably.errors import Interrupted, StoreClosed
from durably.hooks import Hooks, RunClaimed, RunEnded, RunSuspended, emit
from durably.records import Claim
from durably.runtime.compensation import interrupted_unwinding, needs_unwinding, unwind
from durably.runtime.context import RunContext, activate, deactivate
from durably.runtime.effects import drive_async, drive_sync
from durably.runtime.ending import Conclusion, conclude
from durably.serialization import decode_call

T = TypeVar("T")


def run_sync(ctx: RunContext, committer: Committer) -> Conclusion | None:
    """Execute a sync run on this thread; its conclusion, not yet written."""
    token = activate(ctx)
    try:
        try:
            result, error = _call(ctx), None
            ctx.check_unseen_cancel()
        except BaseException as exc:
            result, error = None, exc
        if needs_unwinding(ctx, error):
            try:
                drive_sync(committer, unwind(ctx))
            except BaseException as exc:
                error = interrupted_unwinding(error, exc)
    finally:
        deactivate(token)
    return conclude(ctx, result, error)


async def run_async(ctx: RunContext, committer: Committer) -> Conclusion | None:
    """Execute an async run on this loop; its conclusion, not yet written."""
    token = activate(ctx)
    try:
        try:
            result, error = await _call(ctx), None
            ctx.check_unseen_cancel()
        except BaseException as exc:
            result, error = None, exc
        if needs_unwinding(ctx, error):
            try:
                await drive_async(committer, unwind(ctx))
            except BaseException as exc:
                error = interrupted_unwinding(error, exc)
    finally:
        deactivate(token)
    return conclude(ctx, result, error)


def _call(ctx: RunContext) -> Any:
    """Decode the run's input and call the workflow function (a coroutine if async)."""
    if ctx.cancel_requested and not ctx.recorded:
        ctx.gate()  # cancelled before it ever ran: no need to start it
    fn = ctx.workflow.fn
    args, kwargs = decode_call(fn, ctx.run.input, what=f"input of run {ctx.run_id}")
    return fn(*args, **kwargs)


def tell_hooks(hooks: Hooks, ctx: RunContext, ending: Conclusion) -> None:
    """The run ended, or suspended, durably: tell the subscribers."""
    if ending.status.terminal:
        if hooks.run_ended:
            seconds = max(0.0, ctx.store.now() - ctx.run.created_at)
            ended = RunEnded(
                ctx.run_id,
                ctx.workflow_name,
                ending.status,
                ending.error,
                seconds,
                ctx.run.queue,
                ctx.run.parent_id,
            )
            emit(hooks.run_ended, ended)
    elif hooks.run_suspended:
        parked = RunSuspended(ctx.run_id, ctx.workflow_name, ending.status, ending.wake_at)
        emit(hooks.run_suspended, parked)


def claimed_event(claim: Claim, owner: str) -> RunClaimed:
    """What the hooks are told of a claim."""
    run = claim.run
    return RunClaimed(
        run.run_id,
        run.workflow,
        run.queue,
        owner,
        run.attempts,
        bool(claim.journal),
        recovered=claim.recovered_from is not None,
        waited=max(0.0, run.updated_at - run.available_at) if run.available_at else 0.0,
        parent_id=run.parent_id,
        trace=run.trace,
        created_at=run.created_at,
        started_here=claim.started_here,
    )


def note_lost(committer: Committer, ctx: RunContext, owner: str) -> None:
    """Tell the run's history that this worker lost it (best effort: nobody waits)."""
    detail = {"worker": owner, "epoch": ctx.lease.epoch}
    with contextlib.suppress(StoreClosed):
        committer.queue(
            lambda tx: ctx.store.add_history(tx, ctx.run_id, "lease lost", detail),
            lambda ok, value: None,
        )


def guarded_task(
    loop: asyncio.AbstractEventLoop,
    coro: Coroutine[Any, Any, T] | Generator[Any, None, T],
    /,
    **options: Any,
) -> asyncio.Future[T]:
    """Every task on the engine's loop, its coroutine guarded: a ``KeyboardInterrupt`` or
    ``SystemExit`` that user code raises in a task (a step with a timeout, a branch of
    ``asyncio.gather``) would otherwise escape the task and stop the loop every async
    run shares. It becomes :class:`~durably.errors.Interrupted` instead."""
    return asyncio.Task(_guarded(coro), loop=loop, **options)


async def _guarded(coro: Coroutine[Any, Any, T] | Generator[Any, None, T]) -> T:
    try:
        return await cast(Awaitable[T], coro)
    except (KeyboardInterrupt, SystemExit) as exc:
        raise Interrupted.of(exc, "in a task of an async run") from exc
