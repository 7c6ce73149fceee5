"""Child workflows: durable runs started by a run, which waits for them without a worker."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Generic, ParamSpec, TypeVar, overload

from durably.errors import ChildFailed, ErrorInfo
from durably.hooks import RunStarted, RunStarting, carrier, emit
from durably.records import Claim, EntryStatus, NewRun, RunRow, RunStatus, new_run_id
from durably.registry import Workflow
from durably.runtime.context import RunContext, require
from durably.runtime.effects import Plan, drive_async, drive_sync
from durably.runtime.unwinding import Suspend
from durably.serialization import dumps, encode_call, loads, return_hint
from durably.stores.base import Transaction

P = ParamSpec("P")
R = TypeVar("R")


class ChildHandle(Generic[R]):
    """A child run; ``result()`` waits for it durably (the parent is released meanwhile)."""

    def __init__(self, run_id: str, workflow: str, hint: Any) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self._hint = hint

    def __repr__(self) -> str:
        return f"<ChildHandle {self.run_id} ({self.workflow})>"

    def result(self) -> R:
        """The child's result; :class:`ChildFailed` if it failed or was cancelled."""
        ctx = require("ChildHandle.result")
        ctx.blocking("ChildHandle.result()", "await handle.result_async()")
        value: R = drive_sync(ctx.committer, _join_plan(ctx, self))
        return value

    async def result_async(self) -> R:
        """Async twin of :meth:`result`."""
        ctx = require("ChildHandle.result_async")
        value: R = await drive_async(ctx.committer, _join_plan(ctx, self))
        return value


def _start_plan(
    ctx: RunContext, wf: Workflow[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Plan[ChildHandle[Any]]:
    seq, entry, site = ctx.allocate("child", wf.name)
    hint = return_hint(wf.fn)
    if entry is not None:
        return ChildHandle(loads(entry.output, what="a child id"), wf.name, hint)
    wf.check_arguments(args, kwargs)
    ctx.gate()
    # A new id each time: no start call can name a child before it exists. (A write
    # retried after an error reporting a commit keeps this id: it is made once here.)
    child_id = new_run_id()
    what = f"input of child workflow {wf.name!r}"
    text = encode_call(wf.fn, args, kwargs, what=what, limit=ctx.max_payload)
    host = ctx.host
    direct = host is not None and host.has_room("default", wf.name)
    hooks = ctx.hooks
    trace = None
    if hooks.run_starting:  # in the parent's execution (its current span)
        starting = RunStarting(child_id, wf.name, "default", "child", parent_id=ctx.run_id)
        trace = carrier(hooks.run_starting, starting)
    child = NewRun(
        run_id=child_id,
        workflow=wf.name,
        input=text,
        parent_id=ctx.run_id,
        owner=host.owner if direct and host is not None else None,
        lease=host.lease if host is not None else 0.0,
        trace=trace,
    )
    started = ctx.entry(seq, "child", wf.name, site, dumps(child_id, what="a child id"))
    store, lease = ctx.store, ctx.lease

    def start(tx: Transaction) -> tuple[RunRow, bool]:
        # The journal entry first: a lost lease then leaves no child behind.
        store.append_entry(tx, lease, started)
        row, created = store.create_run(tx, child)
        if not created:
            child.check_same(row)
        return row, created

    row, created = yield ctx.fenced(start)
    if created and hooks.run_started:
        emit(hooks.run_started, RunStarted(child_id, wf.name, row.queue, "child"))
    if created and direct and host is not None:
        host.dispatch(Claim(row, (), started_here=True))
    return ChildHandle(child_id, wf.name, hint)


def _join_plan(ctx: RunContext, child: ChildHandle[Any]) -> Plan[Any]:
    seq, entry, site = ctx.allocate("join", child.workflow)
    if entry is not None and entry.status is EntryStatus.COMPLETED:
        return loads(entry.output, child._hint, what=f"result of child {child.run_id}")
    if entry is not None and entry.status is EntryStatus.FAILED:
        assert entry.error is not None
        raise ChildFailed(child.run_id, entry.error)
    ctx.gate()
    store = ctx.store
    row = yield ctx.fenced(lambda tx: store.last_links(tx, [child.run_id]).get(child.run_id))
    if row is None or not row.status.terminal:
        raise Suspend(RunStatus.WAITING, None)  # the child's end wakes this run
    if row.status is RunStatus.COMPLETED:
        yield ctx.write_entry(ctx.entry(seq, "join", child.workflow, site, row.output))
        return loads(row.output, child._hint, what=f"result of child {child.run_id}")
    error = row.error or ErrorInfo(row.status.value, f"child run {row.run_id} {row.status}")
    yield ctx.write_entry(
        ctx.entry(seq, "join", child.workflow, site, None, EntryStatus.FAILED, error)
    )
    raise ChildFailed(child.run_id, error)


@overload
def start_child(
    wf: Workflow[P, Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs
) -> ChildHandle[R]: ...
@overload
def start_child(wf: Workflow[P, R], /, *args: P.args, **kwargs: P.kwargs) -> ChildHandle[R]: ...
def start_child(wf: Workflow[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> ChildHandle[Any]:
    """Start ``wf`` as a durable child run of this run; returns its handle.

    Cancelling the parent cancels its children. A failed child raises
    :class:`ChildFailed` from ``handle.result()``, the same on replay.
    """
    ctx = require("durably.start_child")
    ctx.blocking("durably.start_child()", "await durably.start_child_async()")
    return drive_sync(ctx.committer, _start_plan(ctx, wf, args, kwargs))


@overload
async def start_child_async(
    wf: Workflow[P, Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs
) -> ChildHandle[R]: ...
@overload
async def start_child_async(
    wf: Workflow[P, R], /, *args: P.args, **kwargs: P.kwargs
) -> ChildHandle[R]: ...
async def start_child_async(
    wf: Workflow[P, Any], /, *args: P.args, **kwargs: P.kwargs
) -> ChildHandle[Any]:
    """Async twin of :func:`start_child`."""
    ctx = require("durably.start_child_async")
    return await drive_async(ctx.committer, _start_plan(ctx, wf, args, kwargs))
