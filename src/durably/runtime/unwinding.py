"""How a workflow's execution is unwound early: to wait, or to continue as a new run.

Both are ``BaseException`` so that a workflow's ``except Exception`` cannot
swallow them; the executor turns them into the execution's final write.
"""

from __future__ import annotations

from typing import Any

from durably.records import JournalEntry, RunStatus


class Suspend(BaseException):
    """Unwinds a workflow that must wait: the run is released until ``available_at``.

    ``entries`` are journal entries written in the same transaction as the
    suspension.
    """

    def __init__(
        self, status: RunStatus, available_at: float | None, entries: tuple[JournalEntry, ...] = ()
    ) -> None:
        super().__init__(status.value)
        self.status = status
        self.available_at = available_at
        self.entries = entries


class ContinueAsNew(BaseException):
    """Ends the run; its successor starts with these arguments."""

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        super().__init__("continue_as_new")
        self.call_args = args
        self.call_kwargs = kwargs
