"""Per-step retry policy: how many attempts, and how long to wait between them."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from durably.errors import FatalError, RetryableError

Backoff = Literal["exponential", "fixed"] | float

#: Delays up to this long are slept in place; longer ones free the worker and the
#: run is rescheduled through the claim path.
RESIDENT_DELAY = 1.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``retries`` more attempts after the first, spaced by ``backoff``.

    ``"exponential"`` waits ``base * 2**(n-1)`` seconds (capped at ``max_delay``)
    with jitter in its upper half; ``"fixed"`` waits ``base``; a number waits that
    many seconds.
    """

    retries: int = 3
    backoff: Backoff = "exponential"
    base: float = 1.0
    max_delay: float = 300.0

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"retries must be a non-negative int, not {self.retries!r}")
        if isinstance(self.backoff, str):
            if self.backoff not in ("exponential", "fixed"):
                raise ValueError(
                    f"backoff must be 'exponential', 'fixed' or seconds, not {self.backoff!r}"
                )
        elif (
            isinstance(self.backoff, bool)
            or not isinstance(self.backoff, int | float)
            or not (0 <= self.backoff < float("inf"))
        ):
            raise ValueError(f"backoff seconds must be a finite number >= 0, not {self.backoff!r}")

    def next_delay(self, attempt: int, error: BaseException) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or ``None`` to give up."""
        if isinstance(error, FatalError) or attempt > self.retries:
            return None
        retry_after: float | None = getattr(error, "retry_after", None)
        if isinstance(error, RetryableError) and retry_after is not None:
            return max(0.0, float(retry_after))
        if self.backoff == "fixed":
            return self.base
        if self.backoff == "exponential":
            ceiling: float = min(self.max_delay, self.base * 2 ** (attempt - 1))
            return ceiling * random.uniform(0.5, 1.0)
        return float(self.backoff)
