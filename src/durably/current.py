"""Which run is executing in this thread or task: the one place that knows.

The runtime sets these variables around an execution; step calls
(:class:`durably.Step`) and the primitives read them. ``workflow_run`` is
``None`` inside step bodies, so a step called from a step body is a plain
call; ``owning_run`` stays set there, for code that works on the run's behalf
(``durably.is_cancelled()``, log records).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Protocol


class Execution(Protocol):
    """What a step call needs from the run executing it."""

    def call_step(self, step: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any: ...


#: The workflow run executing workflow code here (``None`` in step bodies).
workflow_run: ContextVar[Any] = ContextVar("durably_run", default=None)
#: The run on whose behalf code executes here, step bodies included.
owning_run: ContextVar[Any] = ContextVar("durably_owning_run", default=None)
