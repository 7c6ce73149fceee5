"""Compensation: a durable undo stack, run in reverse when a run fails or is cancelled."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec

from durably.errors import LeaseLost, NotInWorkflow, StepFailed
from durably.registry import Step
from durably.retry import RetryPolicy
from durably.runtime.context import RunContext, current
from durably.runtime.effects import Plan
from durably.runtime.retrying import COMPENSATION_SITE
from durably.runtime.unwinding import ContinueAsNew, Suspend

P = ParamSpec("P")
log = logging.getLogger("durably.compensation")


def compensate(fn: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> None:
    """Push an undo action: if the run then fails or is cancelled, it runs as a durable step.

    Actions run in reverse order of registration, after the workflow raised and
    before the run ends. A step runs with its own policy; a plain function runs
    as a step named ``compensate:<qualified name>``.
    """
    ctx = current()
    if ctx is None:
        raise NotInWorkflow("durably.compensate() can only be called inside a workflow run")
    is_async = fn.is_async if isinstance(fn, Step) else inspect.iscoroutinefunction(fn)
    if is_async and not ctx.is_async:
        name = getattr(fn, "__qualname__", repr(fn))
        raise TypeError(
            f"durably.compensate({name}): an async undo action cannot run in sync workflow "
            f"{ctx.workflow.name!r}; make the action sync, or the workflow async"
        )
    ctx.compensations.append((fn, args, kwargs))


def needs_unwinding(ctx: RunContext, error: BaseException | None) -> bool:
    """A failure or a cancellation unwinds; suspensions, lost leases and bugs in replay don't."""
    if error is None or not ctx.compensations or ctx.lost or ctx.fatal is not None:
        return False
    return not isinstance(error, Suspend | ContinueAsNew | LeaseLost)


def interrupted_unwinding(original: BaseException | None, interruption: BaseException) -> Any:
    """What ends the execution when unwinding itself had to stop (a suspension, a lost lease)."""
    if isinstance(interruption, Suspend | LeaseLost):
        return interruption
    log.error("compensation stopped by an unexpected error: %r", interruption)
    return original


def _undo_steps(
    ctx: RunContext,
) -> Iterator[tuple[Step[Any, Any], tuple[Any, ...], dict[str, Any]]]:
    actions, ctx.compensations = ctx.compensations, []
    for fn, args, kwargs in reversed(actions):
        if not isinstance(fn, Step):
            fn = Step(fn, f"compensate:{fn.__qualname__}", RetryPolicy(), None)
        yield fn, args, kwargs


def unwind(ctx: RunContext) -> Plan[None]:
    """Run the undo actions as durable steps, newest first; a failed one does not stop the rest."""
    ctx.shielded += 1  # undo work must run even though the run was cancelled
    ctx.site = COMPENSATION_SITE  # so that a retry knows the run's work was undone
    try:
        for step, args, kwargs in _undo_steps(ctx):
            try:
                yield from ctx.step_plan(step, args, kwargs)
            except StepFailed as exc:
                log.error("run %s: compensation failed: %s", ctx.run_id, exc)
    finally:
        ctx.shielded -= 1
        ctx.site = None
