"""Retention: how long finished runs are kept before they are deleted.

``Engine(retention=durably.Retention(completed="30d", failed="90d"))`` makes one
worker of the fleet at a time delete, in small batches, the run trees whose every
run ended longer ago than its status allows: a root, its children and its
continue-as-new chain, with their journals, signals, events and history, whole
or not at all. A run that has not ended is never deleted, however old.
"""

from __future__ import annotations

from datetime import timedelta

from durably.durations import parse_duration

Duration = str | float | int | timedelta


class Retention:
    """How long runs are kept once they ended, per status; ``None`` keeps them forever.

    Args:
        completed: how long a completed run is kept (default 30 days).
        failed: how long a failed run is kept (default 90 days: they are debugged).
        cancelled: how long a cancelled run is kept (default 30 days).
    """

    __slots__ = ("ages",)

    def __init__(
        self,
        completed: Duration | None = "30d",
        failed: Duration | None = "90d",
        cancelled: Duration | None = "30d",
    ) -> None:
        given = {"completed": completed, "failed": failed, "cancelled": cancelled}
        self.ages = {k: parse_duration(v) for k, v in given.items() if v is not None}

    def cutoffs(self, now: float) -> dict[str, float]:
        """Per status: a run that ended before this store time may be deleted."""
        return {status: now - age for status, age in self.ages.items()}

    def __repr__(self) -> str:
        kept = ", ".join(f"{k}={v:g}s" for k, v in self.ages.items())
        return f"Retention({kept})"
