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
        every: how often the fleet's sweeper looks for runs to delete (default 10 min).
        batch: run trees deleted per transaction (default 200): small transactions
            let the workload's writes through between them.
    """

    __slots__ = ("ages", "batch", "every")

    def __init__(
        self,
        completed: Duration | None = "30d",
        failed: Duration | None = "90d",
        cancelled: Duration | None = "30d",
        *,
        every: Duration = "10m",
        batch: int = 200,
    ) -> None:
        given = {"completed": completed, "failed": failed, "cancelled": cancelled}
        self.ages = {k: parse_duration(v) for k, v in given.items() if v is not None}
        self.every = parse_duration(every)
        if self.every <= 0:
            raise ValueError(f"every must be a positive duration, not {every!r}")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be a positive int, not {batch!r}")
        self.batch = batch

    def cutoffs(self, now: float) -> dict[str, float]:
        """Per status: a run that ended before this store time may be deleted."""
        return {status: now - age for status, age in self.ages.items()}

    def __repr__(self) -> str:
        kept = ", ".join(f"{k}={v:g}s" for k, v in self.ages.items())
        return f"Retention({kept}, every={self.every:g}s, batch={self.batch})"
