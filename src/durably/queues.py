"""Queues: named lanes of runs with limits that hold across every worker.

Declare them in code shared by all processes, like workflows::

    billing = durably.Queue("billing", concurrency=10, partition_concurrency=1)

A run goes to a queue with ``start_workflow(..., queue="billing", partition_key=customer)``.
Limits count runs that are executing now (a sleeping or waiting run holds no slot).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from durably.durations import parse_duration
from durably.names import check_name

_declared: dict[str, Queue] = {}
_lock = threading.Lock()


def _positive(name: str, value: int | None) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**31
    ):
        raise ValueError(f"{name} must be an int from 1 to 2**31 - 1, or None, not {value!r}")


@dataclass(frozen=True)
class Queue:
    """A queue and its limits.

    Args:
        name: the queue's name, as given to ``start_workflow(queue=...)``.
        concurrency: runs of this queue executing at once, across all workers.
        worker_concurrency: runs of this queue one worker process executes at once.
        rate_limit: ``(starts, period)``: at most that many runs start per period
            (``(100, "1m")``); a run resuming after a sleep is not a start.
        partition_concurrency: runs executing at once per ``partition_key``.
    """

    name: str
    concurrency: int | None = None
    worker_concurrency: int | None = None
    rate_limit: tuple[int, float | str] | None = None
    partition_concurrency: int | None = None

    def __post_init__(self) -> None:
        check_name("a queue name", self.name)
        _positive("concurrency", self.concurrency)
        _positive("worker_concurrency", self.worker_concurrency)
        _positive("partition_concurrency", self.partition_concurrency)
        if self.rate_limit is not None:
            starts, period = self.rate_limit
            _positive("rate_limit starts", starts)
            if parse_duration(period) <= 0:
                raise ValueError("the rate_limit period must be longer than zero")
        with _lock:
            existing = _declared.get(self.name)
            if existing is not None and existing != self:
                raise ValueError(f"queue {self.name!r} is already declared as {existing}")
            _declared[self.name] = self

    @property
    def rate_period(self) -> float | None:
        return None if self.rate_limit is None else parse_duration(self.rate_limit[1])

    @property
    def shared_limits(self) -> bool:
        """Whether claims must look at what every worker runs (not just this one)."""
        return bool(self.concurrency or self.rate_limit or self.partition_concurrency)


def declared(name: str) -> Queue | None:
    return _declared.get(name)


def all_declared() -> list[Queue]:
    return list(_declared.values())
