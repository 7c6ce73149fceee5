"""What an execution of a run leaves behind: completed, failed, cancelled, or suspended."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from durably import crashpoints
from durably.errors import (
    ErrorInfo,
    LeaseLost,
    RecoveryLimitExceeded,
    SerializationError,
    WorkflowCancelled,
    WorkflowTimedOut,
)
from durably.hooks import RunStarted, emit
from durably.records import Claim, NewRun, RunRow, RunStatus, new_run_id
from durably.runtime.context import RunContext
from durably.runtime.unwinding import ContinueAsNew, Suspend
from durably.serialization import dumps, encode_call
from durably.stores.base import Transaction


@dataclass(frozen=True, slots=True)
class Conclusion:
    """The final write of one execution, and what follows once it committed."""

    op: Callable[[Transaction], Any]
    status: RunStatus
    wake_at: float | None = None
    then: Callable[[Any], None] | None = None
    #: The result's JSON text when the run completed (not when it continued as new).
    output: str | None = None
    error: ErrorInfo | None = None


def conclude(ctx: RunContext, result: Any, error: BaseException | None) -> Conclusion | None:
    """Decide how this execution ends; ``None`` when it must be abandoned.

    Abandoned: another worker owns the run now, or the database failed one of its
    writes (then the executor releases the run for a later replay). Whatever the
    result and the error do when they are encoded or described, the run ends: as
    failed, with the best description that can be built.
    """
    try:
        return _conclude(ctx, result, error)
    except BaseException as exc:
        return _finish(ctx, RunStatus.FAILED, None, ErrorInfo.from_exception(exc))


def _conclude(ctx: RunContext, result: Any, error: BaseException | None) -> Conclusion | None:
    if ctx.lost or ctx.broken or isinstance(error, LeaseLost):
        return None
    crashpoints.hit("run.before_finish")
    if error is None:
        ctx.check_finished()
    if ctx.fatal is not None:
        error = ctx.fatal  # even if the workflow caught it
    if isinstance(error, Suspend):
        return _suspend(ctx, error)
    if isinstance(error, ContinueAsNew):
        try:
            return _continue(ctx, error)
        except SerializationError as exc:
            error = exc
    if error is None:
        what = f"result of workflow {ctx.workflow.name!r} (run {ctx.run_id})"
        try:
            text = dumps(result, what=what, limit=ctx.max_payload)
        except SerializationError as exc:
            error = exc
        else:
            return _finish(ctx, RunStatus.COMPLETED, text, None)
    if isinstance(error, WorkflowTimedOut):  # its children are cancelled with it
        info = ErrorInfo.from_exception(error)
        return _finish(ctx, RunStatus.CANCELLED, None, info, cancel_children=True)
    if isinstance(error, WorkflowCancelled):
        return _finish(ctx, RunStatus.CANCELLED, None, ErrorInfo.from_exception(error))
    return _finish(ctx, RunStatus.FAILED, None, ErrorInfo.from_exception(error))


def recovery_limit(ctx: RunContext, limit: int) -> Conclusion:
    """The end of a run that keeps killing the workers that execute it."""
    run = ctx.run
    error = RecoveryLimitExceeded(
        f"run {run.run_id} was recovered {run.recoveries} times in a row from workers that "
        f"died executing it, with no step completed in between (more than {limit}): it may "
        f"be what kills them (a crash, running out of memory). It is failed; "
        f"engine.retry({run.run_id!r}) runs it again"
    )
    return _finish(ctx, RunStatus.FAILED, None, ErrorInfo.from_exception(error))


def _suspend(ctx: RunContext, request: Suspend) -> Conclusion:
    store, lease = ctx.store, ctx.lease
    status, wake_at, entries = request.status, request.available_at, request.entries
    if ctx.deadline is not None:  # wake it at its workflow's timeout at the latest
        wake_at = ctx.deadline if wake_at is None else min(wake_at, ctx.deadline)

    def suspend(tx: Any) -> None:
        for entry in entries:
            store.append_entry(tx, lease, entry)
        store.suspend_run(tx, lease, status, wake_at)

    return Conclusion(ctx.fenced(suspend).op, status, wake_at)


def _finish(
    ctx: RunContext,
    status: RunStatus,
    output: str | None,
    error: ErrorInfo | None,
    *,
    cancel_children: bool = False,
) -> Conclusion:
    store, lease = ctx.store, ctx.lease
    parent = ctx.run.parent_id

    def finish(tx: Transaction) -> None:
        if cancel_children and error is not None:
            store.cancel_run(tx, lease.run_id, error.message)  # flags the tree, wakes it
        store.finish_run(tx, lease, status, output, error, None, parent)

    write = ctx.fenced(finish)
    return Conclusion(write.op, status, output=output, error=error)


def _continue(ctx: RunContext, request: ContinueAsNew) -> Conclusion:
    """End the run and create its successor with fresh input (and an empty journal)."""
    workflow, host = ctx.workflow, ctx.host
    text = encode_call(
        workflow.fn,
        request.call_args,
        request.call_kwargs,
        what=f"input of workflow {workflow.name!r} (continued from run {ctx.run_id})",
        limit=ctx.max_payload,
    )
    run = ctx.run
    direct = host is not None and host.has_room(run.queue, workflow.name)
    successor = NewRun(  # the same logical chain: same queue, priority, partition, parent
        run_id=new_run_id(),
        workflow=workflow.name,
        input=text,
        queue=run.queue,
        priority=run.priority,
        partition_key=run.partition_key,
        parent_id=run.parent_id,
        owner=host.owner if direct and host is not None else None,
        lease=host.lease if host is not None else 0.0,
        trace=run.trace,  # the chain's trace goes on
    )
    store, lease = ctx.store, ctx.lease

    def continue_run(tx: Transaction) -> tuple[RunRow, bool]:
        store.finish_run(tx, lease, RunStatus.COMPLETED, None, None, successor.run_id)
        return store.create_run(tx, successor)

    write = ctx.fenced(continue_run)

    def dispatch(created: tuple[Any, bool]) -> None:
        row, new = created
        if new and ctx.hooks.run_started:  # a run created, as a start's or a child's
            emit(ctx.hooks.run_started, RunStarted(row.run_id, row.workflow, row.queue, "continue"))
        if new and direct and host is not None:
            host.dispatch(Claim(row, (), started_here=True))

    return Conclusion(write.op, RunStatus.COMPLETED, then=dispatch)
