"""Which run is executing in this thread or task, and which step attempt: the one place
that knows.

The runtime sets these variables around an execution; step calls
(:class:`durably.Step`) and the primitives read them. ``workflow_run`` is
``None`` inside step bodies, so a step called from a step body is a plain
call; ``owning_run`` stays set there, for code that works on the run's behalf
(``durably.is_cancelled()``, log records); ``step_attempt`` is set only inside a
step's body.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Protocol


class Execution(Protocol):
    """What a step call needs from the run executing it."""

    def call_step(self, step: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any: ...


class Attempt:
    """One attempt of a step's body, as the body sees it (``durably.heartbeat()``,
    ``durably.current_run()``, ``durably.is_cancelled()``)."""

    __slots__ = (
        "abandoned",
        "beat",
        "details",
        "number",
        "previous_details",
        "seq",
        "started",
        "step",
    )

    def __init__(self, step: str, seq: int, number: int, now: float, previous: Any) -> None:
        self.step = step
        self.seq = seq
        self.number = number  # 1 for the first attempt
        #: Set once the attempt ran past its timeout and a retry may start: the body
        #: should stop (``heartbeat()`` raises from then on).
        self.abandoned = False
        self.started = now  # monotonic
        self.beat = now  # monotonic time of the last heartbeat (the start, at first)
        self.details: Any = None  # what the body passed to its last heartbeat
        self.previous_details = previous  # ... and the previous attempt's, in this process


#: The workflow run executing workflow code here (``None`` in step bodies).
workflow_run: ContextVar[Any] = ContextVar("durably_run", default=None)
#: The run on whose behalf code executes here, step bodies included.
owning_run: ContextVar[Any] = ContextVar("durably_owning_run", default=None)
#: The step attempt whose body executes here (``None`` outside step bodies).
step_attempt: ContextVar[Attempt | None] = ContextVar("durably_step_attempt", default=None)
