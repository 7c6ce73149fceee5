"""Start requests: checked and encoded before anything is written, then one write.

A run this process can take at once is created already claimed (``owner`` set) and
dispatched right after its commit, so a start costs one transaction and no claim.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from durably import crashpoints, registry
from durably.durations import parse_duration
from durably.errors import WorkflowNotFound
from durably.executor import Executor
from durably.handle import RunHandle
from durably.plans import Plan, Write
from durably.records import Claim, NewRun, new_run_id
from durably.registry import Workflow
from durably.serialization import encode_call, return_hint
from durably.stores.base import Store


@dataclass(frozen=True, slots=True)
class StartOptions:
    """The keyword options of ``start_workflow``, as the caller gave them."""

    run_id: str | None
    idempotency_key: str | None
    queue: str
    priority: int
    delay: float | str | None
    partition_key: str | None


def check_id(kind: str, value: str | None) -> str | None:
    """``value`` if it is ``None`` or a usable id; a :class:`ValueError` otherwise."""
    if value is not None and (not isinstance(value, str) or not value or len(value) > 200):
        raise ValueError(f"{kind} must be a non-empty string of at most 200 chars, not {value!r}")
    return value


def _resolve(wf: Workflow[Any, Any] | str, *, execute: bool) -> Workflow[Any, Any] | None:
    """The workflow ``wf`` names; ``None`` for a name a client starts for others."""
    if isinstance(wf, Workflow):
        return wf
    if not isinstance(wf, str):
        raise WorkflowNotFound(f"{wf!r} is not a durably workflow; decorate it with @workflow")
    try:
        return registry.lookup(wf)
    except WorkflowNotFound:
        if execute:
            raise
        check_id("workflow name", wf)
        return None  # a client starts it by name for workers that have it


def new_run(
    wf: Workflow[Any, Any] | str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: StartOptions,
    *,
    execute: bool,
    executor: Executor | None,
    lease: float,
    max_payload: int,
) -> tuple[NewRun, Any]:
    """Check and encode a start request; returns the row to write and the result's type."""
    workflow = _resolve(wf, execute=execute)
    name = workflow.name if workflow is not None else str(wf)
    fn = workflow.fn if workflow is not None else None
    text = encode_call(fn, args, kwargs, what=f"input of workflow {name!r}", limit=max_payload)
    priority, delay, queue = options.priority, options.delay, options.queue
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ValueError(f"priority must be an int, not {priority!r}")
    wait = 0.0 if delay is None else parse_duration(delay)
    direct = executor is not None and not wait and executor.has_room(queue, name)
    new = NewRun(
        run_id=check_id("run_id", options.run_id) or new_run_id(),
        workflow=name,
        input=text,
        idempotency_key=check_id("idempotency_key", options.idempotency_key),
        queue=check_id("queue", queue) or "default",
        priority=priority,
        delay=wait,
        partition_key=check_id("partition_key", options.partition_key),
        owner=executor.owner if direct and executor is not None else None,
        lease=lease,
    )
    return new, Any if fn is None else return_hint(fn)


def start_plan(
    store: Store,
    executor: Executor | None,
    new: NewRun,
    handle: Callable[[str], RunHandle[Any]],
) -> Plan[RunHandle[Any]]:
    """Write the run, then set it going here or wake whoever will take it."""
    row, created = yield Write(lambda tx: store.create_run(tx, new))
    crashpoints.hit("start.after_create")
    # Only a run this call created is dispatched here. (A run claimed by a create
    # whose commit reported an error is not running; its lease is not renewed, so
    # it expires and any worker claims it.)
    if created and executor is not None:
        if new.owner is not None:
            executor.dispatch(Claim(row, ()))
        elif new.delay:
            executor.wake_at(executor.db_now() + new.delay)
        else:
            executor.poke()
    return handle(row.run_id)
