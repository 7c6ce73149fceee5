"""Deterministic parallel steps: journal positions are taken in call order, up front.

Sync workflows run the branches on threads, async ones on tasks. Results come
in input order; the first failure (in input order) is raised once every branch
settled, so completed branches are checkpointed and replay on resume.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from durably.errors import LeaseLost
from durably.registry import Step
from durably.runtime.context import RunContext, current
from durably.runtime.effects import Plan, drive_async, drive_sync
from durably.runtime.unwinding import Suspend

T = TypeVar("T")
R = TypeVar("R")

#: Threads one sync ``map``/``gather`` may use at most.
MAX_THREADS = 32


def _settled(outcomes: list[tuple[bool, Any]]) -> list[Any]:
    """Results in order; or why not: a lost lease, then unsettled branches, then a failure."""
    errors = [value for ok, value in outcomes if not ok]
    for error in errors:
        if isinstance(error, LeaseLost):
            raise error
    waits = [e for e in errors if isinstance(e, Suspend)]
    if waits:  # some branch comes back later: the run waits for it, recording every branch
        due = [w.available_at for w in waits if w.available_at is not None]
        entries = tuple(entry for w in waits for entry in w.entries)
        raise Suspend(waits[0].status, min(due) if due else None, entries)
    if errors:
        raise errors[0]
    return [value for _, value in outcomes]


def _run_threads(ctx: RunContext, plans: list[Plan[Any]], limit: int | None) -> list[Any]:
    if not plans:
        return []

    def branch(plan: Plan[Any]) -> tuple[bool, Any]:
        try:
            return True, drive_sync(ctx.committer, plan)
        except BaseException as exc:  # settle every branch before raising
            return False, exc

    workers = min(limit or len(plans), len(plans), MAX_THREADS)
    with ThreadPoolExecutor(workers, thread_name_prefix="durably-branch") as pool:
        futures = [pool.submit(contextvars.copy_context().run, branch, p) for p in plans]
        return _settled([f.result() for f in futures])


async def _run_tasks(ctx: RunContext, plans: list[Plan[Any]], limit: int | None) -> list[Any]:
    gate = asyncio.Semaphore(limit or len(plans) or 1)

    async def branch(plan: Plan[Any]) -> tuple[bool, Any]:
        async with gate:
            try:
                return True, await drive_async(ctx.committer, plan)
            except BaseException as exc:
                return False, exc

    return _settled(list(await asyncio.gather(*(branch(p) for p in plans))))


def _check_limit(max_concurrency: int | None) -> int | None:
    if max_concurrency is not None and (
        isinstance(max_concurrency, bool)
        or not isinstance(max_concurrency, int)
        or max_concurrency < 1
    ):
        raise ValueError(f"max_concurrency must be a positive int, not {max_concurrency!r}")
    return max_concurrency


def map(step: Step[[T], R], items: Iterable[T], *, max_concurrency: int | None = None) -> list[R]:
    """Call ``step`` on every item in parallel threads; results in input order.

    Outside a workflow the step runs as a plain function, one item after another.
    """
    limit = _check_limit(max_concurrency)
    _check_step("map", step)
    ctx = current()
    if ctx is None:
        return [step(item) for item in items]
    ctx.blocking("durably.map()", "await durably.map_async()")
    plans = [ctx.step_plan(step, (item,), {}) for item in items]
    return _run_threads(ctx, plans, limit)


async def map_async(
    step: Step[[T], Any], items: Iterable[T], *, max_concurrency: int | None = None
) -> list[Any]:
    """Async twin of :func:`map`: async steps run as tasks, sync steps on threads."""
    limit = _check_limit(max_concurrency)
    _check_step("map_async", step)
    ctx = current()
    if ctx is None:
        results = [step(item) for item in items]
        return [await r if isinstance(r, Awaitable) else r for r in results]
    plans = [ctx.step_plan(step, (item,), {}) for item in items]
    return await _run_tasks(ctx, plans, limit)


def gather(*calls: Callable[[], Any]) -> list[Any]:
    """Run step calls in parallel threads: ``gather(lambda: charge(a), lambda: ship(b))``.

    Each function must return exactly one step call; their journal positions
    are taken in argument order, so replay is deterministic.
    """
    ctx = current()
    if ctx is None:
        return [call() for call in calls]
    ctx.blocking("durably.gather()", "asyncio.gather() of async step calls")
    plans: list[Plan[Any]] = []
    for index, call in enumerate(calls):
        ctx.deferred = []
        try:
            returned = call()
        except Exception as exc:
            raise TypeError(_GATHER_USAGE.format(index=index)) from exc
        finally:
            deferred, ctx.deferred = ctx.deferred, None
        if len(deferred) != 1 or returned is not deferred[0]:
            for plan in deferred:
                plan.close()
            raise TypeError(_GATHER_USAGE.format(index=index))
        plans.append(deferred[0])
    return _run_threads(ctx, plans, None)


def _check_step(name: str, step: object) -> None:
    if not isinstance(step, Step):
        raise TypeError(
            f"durably.{name}(): its first argument must be a step (a function decorated "
            f"with @durably.step), like durably.{name}(charge, orders), not {step!r}; for "
            "calls of other shapes use durably.gather(lambda: charge(a, b), ...)"
        )


_GATHER_USAGE = (
    "durably.gather(): argument {index} must be a function returning one step call, "
    "like `lambda: charge(order)`"
)
