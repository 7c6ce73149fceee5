"""Starting runs: a start is checked and encoded before anything is written, then one write.

Start options (run id, idempotency key, queue ...) are given apart from the
workflow's arguments, with :meth:`Starter.with_options`, so no workflow
parameter can be taken for one and ``start_workflow(wf, *args, **kwargs)`` is
checked against the workflow's signature, by mypy and when it is called.

A run this process can take at once is created already claimed (``owner`` set)
and dispatched right after its commit, so a start costs one transaction and no
claim. An async run started from another thread is written in the engine
loop's next batch and starts right there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, overload

from durably import crashpoints, registry
from durably.committer import Committer
from durably.durations import parse_duration
from durably.errors import WorkflowNotFound
from durably.handle import RunHandle, RunSource
from durably.handoff import Waiter, inbox, resolve
from durably.hooks import Hooks, RunStarted, RunStarting, carrier, emit
from durably.names import check_name, check_optional
from durably.records import Claim, NewRun, RunRow, new_run_id
from durably.registry import Workflow
from durably.runtime.effects import Plan, Write, drive_async, drive_sync
from durably.serialization import encode_call, return_hint
from durably.stores.base import Store, Transaction

if TYPE_CHECKING:
    from durably.worker.executor import Executor

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class StartOptions:
    """How runs are started: checked when the options are made, before any start.

    Args:
        run_id: the run's id (default: a new time-ordered id).
        idempotency_key: a second start with this key returns the first run.
        queue: the queue the run waits in (see :class:`durably.Queue`).
        priority: higher runs are claimed first within the claim order.
        delay: start no earlier than this (seconds or ``"10m"``).
        partition_key: runs with one key share the queue's per-key limit.
    """

    run_id: str | None = None
    idempotency_key: str | None = None
    queue: str = "default"
    priority: int = 0
    delay: float | str | None = None
    partition_key: str | None = None

    def __post_init__(self) -> None:
        check_optional("run_id", self.run_id)
        check_optional("idempotency_key", self.idempotency_key)
        check_name("queue", self.queue)
        check_optional("partition_key", self.partition_key)
        if (
            isinstance(self.priority, bool)
            or not isinstance(self.priority, int)
            or not -(2**31) <= self.priority < 2**31
        ):
            raise ValueError(
                f"priority must be an int from -2**31 to 2**31 - 1, not {self.priority!r}"
            )
        if self.delay is not None:
            parse_duration(self.delay)

    @property
    def wait(self) -> float:
        return 0.0 if self.delay is None else parse_duration(self.delay)


class Launcher(RunSource, Protocol):
    """What starting runs needs from the engine."""

    committer: Committer
    hooks: Hooks
    execute: bool
    lease: float
    max_payload: int

    @property
    def executor(self) -> Executor | None:
        """The engine's executor while it is launched."""
        ...


class Starter:
    """Starts runs with one set of :class:`StartOptions` (``engine.with_options(...)``)."""

    def __init__(self, engine: Launcher, options: StartOptions) -> None:
        self._launcher = engine
        self._options = options

    def with_options(
        self,
        *,
        run_id: str | None = None,
        idempotency_key: str | None = None,
        queue: str | None = None,
        priority: int | None = None,
        delay: float | str | None = None,
        partition_key: str | None = None,
    ) -> Starter:
        """A starter with these options (and this one's others)::

            engine.with_options(idempotency_key="o-1", queue="billing").start_workflow(
                checkout, "o-1", 1999
            )

        Raises:
            ValueError: an option is malformed (nothing is started).
        """
        given = {
            "run_id": run_id,
            "idempotency_key": idempotency_key,
            "queue": queue,
            "priority": priority,
            "delay": delay,
            "partition_key": partition_key,
        }
        changes: Any = {k: v for k, v in given.items() if v is not None}
        return Starter(self._launcher, replace(self._options, **changes))

    @overload
    def start_workflow(
        self, wf: Workflow[P, Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> RunHandle[R]: ...
    @overload
    def start_workflow(
        self, wf: Workflow[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> RunHandle[R]: ...
    @overload
    def start_workflow(self, wf: str, /, *args: Any, **kwargs: Any) -> RunHandle[Any]: ...
    def start_workflow(
        self, wf: Workflow[Any, Any] | str, /, *args: Any, **kwargs: Any
    ) -> RunHandle[Any]:
        """Start a run of ``wf`` (a workflow or its registered name) with these arguments.

        The run is durable when this returns. Starting again with the same
        ``run_id`` or ``idempotency_key`` (see :meth:`with_options`) returns the
        existing run's handle.

        Raises:
            WorkflowNotFound: no workflow of that name is registered (executing engines).
            TypeError: the arguments do not fit the workflow's signature.
            SerializationError: an argument cannot be encoded (nothing is written).
        """
        new, hint = self._new_run(wf, args, kwargs)
        executor = self._loop_starter(new)
        if executor is None:
            return drive_sync(self._launcher.committer, self._plan(new, hint))
        waiter = Waiter()
        executor.start_on_loop(self._plan(new, hint), waiter.done)
        return waiter.wait()  # type: ignore[no-any-return]

    @overload
    async def start_workflow_async(
        self, wf: Workflow[P, Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> RunHandle[R]: ...
    @overload
    async def start_workflow_async(
        self, wf: Workflow[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> RunHandle[R]: ...
    @overload
    async def start_workflow_async(
        self, wf: str, /, *args: Any, **kwargs: Any
    ) -> RunHandle[Any]: ...
    async def start_workflow_async(
        self, wf: Workflow[Any, Any] | str, /, *args: Any, **kwargs: Any
    ) -> RunHandle[Any]:
        """Async twin of :meth:`start_workflow`."""
        new, hint = self._new_run(wf, args, kwargs)
        executor = self._loop_starter(new)
        if executor is None:
            return await drive_async(self._launcher.committer, self._plan(new, hint))
        loop = asyncio.get_running_loop()
        started: asyncio.Future[RunHandle[Any]] = loop.create_future()
        box = inbox(loop)
        executor.start_on_loop(
            self._plan(new, hint), lambda ok, value: box.post(resolve, started, ok, value)
        )
        return await started

    # -- the steps of a start -------------------------------------------------------
    def _new_run(
        self, wf: Workflow[Any, Any] | str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[NewRun, Any]:
        """Check and encode a start request; returns the row to write and the result's type."""
        launcher, options = self._launcher, self._options
        workflow = _resolve(wf, execute=launcher.execute)
        name = workflow.name if workflow is not None else str(wf)
        fn = None
        if workflow is not None:
            workflow.check_arguments(args, kwargs)
            fn = workflow.fn
        what = f"input of workflow {name!r}"
        text = encode_call(fn, args, kwargs, what=what, limit=launcher.max_payload)
        wait = options.wait
        executor = launcher.executor
        direct = executor is not None and not wait and executor.has_room(options.queue, name)
        run_id = options.run_id or new_run_id()
        hooks = launcher.hooks
        trace = None
        if hooks.run_starting:  # here, in the caller's context (its current span)
            trace = carrier(hooks.run_starting, RunStarting(run_id, name, options.queue, "start"))
        new = NewRun(
            run_id=run_id,
            workflow=name,
            input=text,
            idempotency_key=options.idempotency_key,
            queue=options.queue,
            priority=options.priority,
            delay=wait,
            partition_key=options.partition_key,
            owner=executor.owner if direct and executor is not None else None,
            lease=launcher.lease,
            trace=trace,
        )
        return new, Any if fn is None else return_hint(fn)

    def _loop_starter(self, new: NewRun) -> Executor | None:
        """The executor to hand this start to, when it is an async run started from
        another thread: its row is then written in the loop's next batch and the run
        starts right there, with no further hand-off. None: start it here."""
        executor = self._launcher.executor
        if executor is None or new.owner is None or not executor.starts_on_loop(new.workflow):
            return None
        return executor

    def _plan(self, new: NewRun, hint: Any) -> Plan[RunHandle[Any]]:
        """Write the run, then set it going here or wake whoever will take it."""
        launcher = self._launcher
        store, executor = launcher.store, launcher.executor
        id_given = self._options.run_id is not None
        row, created = yield Write(lambda tx: _create(store, tx, new, id_given))
        crashpoints.hit("start.after_create")
        if created and launcher.hooks.run_started:
            emit(
                launcher.hooks.run_started, RunStarted(row.run_id, row.workflow, row.queue, "start")
            )
        # Only a run this call created is dispatched here. (A run claimed by a create
        # whose commit reported an error is not running; its lease is not renewed, so
        # it expires and any worker claims it.)
        if created and executor is not None:
            if new.owner is not None:
                executor.dispatch(Claim(row, (), started_here=True))
            elif new.delay:
                executor.wake_at(executor.now() + new.delay)
            else:
                executor.poke()
        return RunHandle(launcher, row.run_id, hint)


def _create(store: Store, tx: Transaction, new: NewRun, id_given: bool) -> tuple[RunRow, bool]:
    row, created = store.create_run(tx, new)
    if not created:  # an id or key of another run is refused, not handed back
        new.check_same(row, id_given=id_given)
    return row, created


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
        check_name("workflow name", wf)
        return None  # a client starts it by name for workers that have it
