"""Per-step retry policy: how many attempts, and how long to wait between them."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Literal

from durably.durations import parse_duration
from durably.errors import FatalError, RetryableError

Duration = str | float | int | timedelta

#: Delays up to this long are slept in place; longer ones free the worker and the
#: run is rescheduled through the claim path.
RESIDENT_DELAY = 1.0


class Backoff:
    """The wait before attempt ``n + 1``: ``initial * factor ** (n - 1)``, at most ``max``,
    then shortened at random by up to ``jitter`` (a fraction of it), so that runs that
    failed together do not all retry at the same moment.

    ``Backoff()`` is the default: 1 s, 2 s, 4 s ... up to 5 minutes, each shortened
    by up to half. ``Backoff(initial="10s", factor=1, jitter=0)`` waits 10 s each time.
    """

    __slots__ = ("factor", "initial", "jitter", "max")

    def __init__(
        self,
        initial: Duration = 1.0,
        max: Duration = "5m",
        factor: float = 2.0,
        jitter: float = 0.5,
    ) -> None:
        self.initial = parse_duration(initial)
        self.max = parse_duration(max)
        if isinstance(factor, bool) or not isinstance(factor, int | float) or not 1 <= factor < 100:
            raise ValueError(f"backoff factor must be a number from 1 to 100, not {factor!r}")
        if isinstance(jitter, bool) or not isinstance(jitter, int | float) or not 0 <= jitter <= 1:
            raise ValueError(f"backoff jitter must be a fraction from 0 to 1, not {jitter!r}")
        if self.max < self.initial:
            raise ValueError(
                f"backoff max ({self.max:g}s) is shorter than initial ({self.initial:g}s)"
            )
        self.factor = float(factor)
        self.jitter = float(jitter)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after attempt ``attempt`` (1 for the first) failed."""
        ceiling = self.initial
        for _ in range(max(0, attempt - 1)):  # stops at max, long before any overflow
            if ceiling >= self.max or ceiling == 0 or self.factor == 1:
                break
            ceiling *= self.factor
        ceiling = min(self.max, ceiling)
        return ceiling * random.uniform(1 - self.jitter, 1) if self.jitter else ceiling

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Backoff) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[float, float, float, float]:
        return (self.initial, self.max, self.factor, self.jitter)

    def __repr__(self) -> str:
        return (
            f"Backoff(initial={self.initial:g}, max={self.max:g}, "
            f"factor={self.factor:g}, jitter={self.jitter:g})"
        )


BackoffSpec = Literal["exponential", "fixed"] | Duration | Backoff


def backoff_of(spec: BackoffSpec) -> Backoff:
    """``"exponential"`` (the default), ``"fixed"`` (1 s), a duration (that long each
    time) or a :class:`Backoff`."""
    if isinstance(spec, Backoff):
        return spec
    if spec == "exponential":
        return Backoff()
    if spec == "fixed":
        return Backoff(initial=1.0, factor=1.0, jitter=0.0)
    try:
        seconds = parse_duration(spec)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"backoff must be 'exponential', 'fixed', a duration or a durably.Backoff, not {spec!r}"
        ) from exc
    return Backoff(initial=seconds, max=max(seconds, 1.0), factor=1.0, jitter=0.0)


class RetryPolicy:
    """``retries`` more attempts after the first, spaced by ``backoff``."""

    __slots__ = ("backoff", "retries")

    def __init__(self, retries: int = 3, backoff: BackoffSpec = "exponential") -> None:
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries < 10**6:
            raise ValueError(f"retries must be a non-negative int, not {retries!r}")
        self.retries = retries
        self.backoff = backoff_of(backoff)

    def next_delay(self, attempt: int, error: BaseException) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or ``None`` to give up."""
        if isinstance(error, FatalError) or attempt > self.retries:
            return None
        if isinstance(error, RetryableError) and error.retry_after is not None:
            return error.retry_after
        return self.backoff.delay(attempt)
