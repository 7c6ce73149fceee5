"""durably: durable workflows for ordinary Python functions.

Decorate functions with :func:`workflow` and :func:`step`, start runs with an
:class:`Engine`, and their progress survives crashes, restarts and deploys.
"""

from typing import TYPE_CHECKING

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
from durably.queues import Queue
from durably.records import Run, RunInfo, RunStatus, StepRecord
from durably.registry import Step, Workflow, step, workflow
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
from durably.stores.sqlite import SQLiteStore

if TYPE_CHECKING:
    from durably.stores.postgres import PostgresStore as PostgresStore

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``durably.PostgresStore``, imported (with psycopg) only when asked for."""
    if name == "PostgresStore":
        from durably.stores.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module 'durably' has no attribute {name!r}")


__all__ = [
    # declaring
    "Backoff",
    "Queue",
    "Step",
    "Workflow",
    "step",
    "workflow",
    # inside a workflow
    "ChildHandle",
    "compensate",
    "continue_as_new",
    "current_run",
    "gather",
    "heartbeat",
    "is_cancelled",
    "map",
    "map_async",
    "now",
    "patched",
    "random",
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
    "Engine",
    "Run",
    "RunHandle",
    "RunInfo",
    "RunStatus",
    "SQLiteStore",
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
