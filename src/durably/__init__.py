"""durably: durable workflows for ordinary Python functions.

Decorate functions with :func:`workflow` and :func:`step`, start runs with an
:class:`Engine`, and their progress survives crashes, restarts and deploys.
"""

import importlib
import logging
from typing import TYPE_CHECKING, Any

# A library's loggers print nothing until the application configures logging (then
# they log through its handlers; `durably worker` configures it).
logging.getLogger("durably").addHandler(logging.NullHandler())

if TYPE_CHECKING:  # what type checkers see; at run time each name loads on first use
    from durably.engine import Engine
    from durably.errors import (
        ChildFailed,
        DurablyError,
        ErrorInfo,
        FatalError,
        IdempotencyConflict,
        InvalidRunState,
        LeaseLost,
        NonDeterminismError,
        NotInWorkflow,
        NoWorker,
        RetryableError,
        RunNotFound,
        ScheduleError,
        ScheduleNotFound,
        SerializationError,
        StepFailed,
        StepTimeout,
        StoreClosed,
        StoreError,
        WorkflowCancelled,
        WorkflowFailed,
        WorkflowNotFound,
        WorkflowTimedOut,
    )
    from durably.handle import RunHandle
    from durably.logs import get_logger
    from durably.operating import RunPage
    from durably.queues import Queue
    from durably.records import HistoryEvent, Run, RunInfo, RunStatus, StepRecord
    from durably.registry import Step, Workflow, step, workflow
    from durably.retention import Retention
    from durably.retry import Backoff
    from durably.runtime.children import ChildHandle, start_child, start_child_async
    from durably.runtime.compensation import compensate
    from durably.runtime.parallel import gather, map, map_async
    from durably.runtime.primitives import (
        continue_as_new,
        current_run,
        heartbeat,
        is_cancelled,
        now,
        patched,
        random,
        schedule_info,
        set_event,
        set_event_async,
        shield,
        sleep,
        sleep_async,
        sleep_until,
        sleep_until_async,
        uuid4,
        wait_for_signal,
        wait_for_signal_async,
    )
    from durably.schedules import ScheduleSpec, schedule
    from durably.scheduling import Backfilled, Schedule, ScheduleDescription
    from durably.stores.postgres import PostgresStore as PostgresStore
    from durably.stores.sqlite import SQLiteStore
    from durably.ticking import ScheduleInfo

__version__ = "0.1.0"

#: Where each public name lives. ``import durably`` loads none of them: a process
#: pays only for what it uses (the CLI, a client engine, a worker), and psycopg only
#: with ``durably.PostgresStore``.
_HOMES = {
    "Engine": "durably.engine",
    "ChildFailed": "durably.errors",
    "DurablyError": "durably.errors",
    "ErrorInfo": "durably.errors",
    "FatalError": "durably.errors",
    "IdempotencyConflict": "durably.errors",
    "InvalidRunState": "durably.errors",
    "LeaseLost": "durably.errors",
    "NoWorker": "durably.errors",
    "NonDeterminismError": "durably.errors",
    "NotInWorkflow": "durably.errors",
    "RetryableError": "durably.errors",
    "RunNotFound": "durably.errors",
    "ScheduleError": "durably.errors",
    "ScheduleNotFound": "durably.errors",
    "SerializationError": "durably.errors",
    "StepFailed": "durably.errors",
    "StepTimeout": "durably.errors",
    "StoreClosed": "durably.errors",
    "StoreError": "durably.errors",
    "WorkflowCancelled": "durably.errors",
    "WorkflowFailed": "durably.errors",
    "WorkflowNotFound": "durably.errors",
    "WorkflowTimedOut": "durably.errors",
    "RunHandle": "durably.handle",
    "Queue": "durably.queues",
    "get_logger": "durably.logs",
    "RunPage": "durably.operating",
    "HistoryEvent": "durably.records",
    "Run": "durably.records",
    "RunInfo": "durably.records",
    "RunStatus": "durably.records",
    "StepRecord": "durably.records",
    "Step": "durably.registry",
    "Workflow": "durably.registry",
    "step": "durably.registry",
    "workflow": "durably.registry",
    "Retention": "durably.retention",
    "Backoff": "durably.retry",
    "ScheduleSpec": "durably.schedules",
    "schedule": "durably.schedules",
    "Backfilled": "durably.scheduling",
    "Schedule": "durably.scheduling",
    "ScheduleDescription": "durably.scheduling",
    "ScheduleInfo": "durably.ticking",
    "ChildHandle": "durably.runtime.children",
    "start_child": "durably.runtime.children",
    "start_child_async": "durably.runtime.children",
    "compensate": "durably.runtime.compensation",
    "gather": "durably.runtime.parallel",
    "map": "durably.runtime.parallel",
    "map_async": "durably.runtime.parallel",
    "continue_as_new": "durably.runtime.primitives",
    "current_run": "durably.runtime.primitives",
    "heartbeat": "durably.runtime.primitives",
    "is_cancelled": "durably.runtime.primitives",
    "now": "durably.runtime.primitives",
    "patched": "durably.runtime.primitives",
    "random": "durably.runtime.primitives",
    "schedule_info": "durably.runtime.primitives",
    "set_event": "durably.runtime.primitives",
    "set_event_async": "durably.runtime.primitives",
    "shield": "durably.runtime.primitives",
    "sleep": "durably.runtime.primitives",
    "sleep_async": "durably.runtime.primitives",
    "sleep_until": "durably.runtime.primitives",
    "sleep_until_async": "durably.runtime.primitives",
    "uuid4": "durably.runtime.primitives",
    "wait_for_signal": "durably.runtime.primitives",
    "wait_for_signal_async": "durably.runtime.primitives",
    "SQLiteStore": "durably.stores.sqlite",
    "PostgresStore": "durably.stores.postgres",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'durably' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups find it without this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


__all__ = [
    # declaring
    "Backoff",
    "Queue",
    "Step",
    "Workflow",
    "schedule",
    "step",
    "workflow",
    # inside a workflow
    "ChildHandle",
    "compensate",
    "continue_as_new",
    "current_run",
    "get_logger",
    "gather",
    "heartbeat",
    "is_cancelled",
    "map",
    "map_async",
    "now",
    "patched",
    "random",
    "schedule_info",
    "set_event",
    "set_event_async",
    "shield",
    "sleep",
    "sleep_async",
    "sleep_until",
    "sleep_until_async",
    "start_child",
    "start_child_async",
    "uuid4",
    "wait_for_signal",
    "wait_for_signal_async",
    # outside: the engine and what it returns
    "Backfilled",
    "Engine",
    "HistoryEvent",
    "Retention",
    "Run",
    "RunHandle",
    "RunInfo",
    "RunPage",
    "RunStatus",
    "SQLiteStore",
    "Schedule",
    "ScheduleDescription",
    "ScheduleInfo",
    "ScheduleSpec",
    "StepRecord",
    # errors
    "ChildFailed",
    "DurablyError",
    "ErrorInfo",
    "FatalError",
    "IdempotencyConflict",
    "InvalidRunState",
    "LeaseLost",
    "NoWorker",
    "NonDeterminismError",
    "NotInWorkflow",
    "RetryableError",
    "RunNotFound",
    "ScheduleError",
    "ScheduleNotFound",
    "SerializationError",
    "StepFailed",
    "StepTimeout",
    "StoreClosed",
    "StoreError",
    "WorkflowCancelled",
    "WorkflowFailed",
    "WorkflowNotFound",
    "WorkflowTimedOut",
    "__version__",
]
