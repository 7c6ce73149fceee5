"""durably: durable workflows for ordinary Python functions.

Decorate functions with :func:`workflow` and :func:`step`, start runs with an
:class:`Engine`, and their progress survives crashes, restarts and deploys.
"""

from durably.children import ChildHandle, start_child, start_child_async
from durably.compensation import compensate
from durably.engine import Engine
from durably.errors import (
    ChildFailed,
    DurablyError,
    ErrorInfo,
    FatalError,
    InvalidRunState,
    LeaseLost,
    NonDeterminismError,
    NotInWorkflow,
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
)
from durably.handle import RunHandle
from durably.parallel import gather, map, map_async
from durably.primitives import (
    continue_as_new,
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
from durably.queues import Queue
from durably.records import Run, RunStatus, StepRecord
from durably.registry import Step, Workflow, step, workflow
from durably.stores.sqlite import SQLiteStore

__version__ = "0.1.0"

__all__ = [
    "ChildFailed",
    "ChildHandle",
    "DurablyError",
    "Engine",
    "ErrorInfo",
    "FatalError",
    "InvalidRunState",
    "LeaseLost",
    "NonDeterminismError",
    "NotInWorkflow",
    "Queue",
    "RetryableError",
    "Run",
    "RunHandle",
    "RunNotFound",
    "RunStatus",
    "SQLiteStore",
    "SerializationError",
    "Step",
    "StepFailed",
    "StepRecord",
    "StepTimeout",
    "StoreClosed",
    "StoreError",
    "Workflow",
    "WorkflowCancelled",
    "WorkflowFailed",
    "WorkflowNotFound",
    "__version__",
    "compensate",
    "continue_as_new",
    "gather",
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
    "step",
    "uuid4",
    "wait_for_signal",
    "wait_for_signal_async",
    "workflow",
]
