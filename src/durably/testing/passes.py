"""An execution's passes through the crash points, counted the same way in the sweep's
process and in a child: the target pass crashes it."""

from __future__ import annotations

import collections
from collections.abc import Callable

from durably import crashpoints
from durably.runtime.context import current

#: The points of an execution (a caller's crash after creating the run is not one).
EXECUTION_POINTS = tuple(p for p in crashpoints.POINTS if p != "start.after_create")
COMMITS = ("commit.before", "commit.after")


class Passes:
    """Counts passes; calls ``crash(name)`` at the ``target``-th pass of a point."""

    def __init__(
        self,
        target: tuple[str, int] | None = None,
        crash: Callable[[str], None] = lambda name: None,
    ) -> None:
        self.target, self.crash = target, crash
        self.passed: list[str] = []  # in order
        self.seen: collections.Counter[str] = collections.Counter()

    def hear(self, name: str) -> None:
        """Count a pass (given to :func:`durably.crashpoints.watching`). Commits count on
        a run's own thread only: a claim loop's empty claims and the caller's start
        commit on others, at moments no two runs share."""
        if name not in EXECUTION_POINTS or (name in COMMITS and current() is None):
            return
        self.seen[name] += 1
        self.passed.append(name)
        if self.target == (name, self.seen[name]):
            self.crash(name)
