"""Named crash points for durability tests.

In production every :func:`hit` is a dictionary miss. A test sets
``DURABLY_CRASH_AT="step.after_body:3"`` (name and the k-th hit, default 1) in a
child process's environment and that process SIGKILLs itself at that moment, so
recovery is proven against a real, abrupt death.
"""

from __future__ import annotations

import os
import signal
import threading

ENV = "DURABLY_CRASH_AT"

#: Every crash point the engine has, in the order a run meets them.
POINTS = (
    "start.after_create",  # the run row committed, start_workflow not yet returned
    "claim.after",  # a claim committed, nothing executed yet
    "step.before_body",
    "step.after_body",  # the body returned, its checkpoint not yet written
    "commit.before",  # a batch is about to commit
    "commit.after",  # a batch committed, callers not yet told
    "step.after_checkpoint",
    "run.before_finish",
    "run.after_finish",
)
#: The scheduler's, swept apart (tests/acceptance/test_schedules_fleet.py).
SCHEDULE_POINTS = (
    "schedule.before_commit",  # a tick's run and the schedule's next state written, not committed
    "schedule.after_commit",  # committed; the claimers not yet told
)

_armed: dict[str, int] = {}
_lock = threading.Lock()


def _arm(spec: str) -> None:
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, count = part.partition(":")
        if name not in POINTS + SCHEDULE_POINTS:
            known = ", ".join(POINTS + SCHEDULE_POINTS)
            raise ValueError(f"{ENV}: unknown crash point {name!r}; known: {known}")
        _armed[name] = int(count or "1")


def hit(name: str) -> None:
    """Count one pass through crash point ``name``; die there if armed for it."""
    if name not in _armed:
        return
    with _lock:
        _armed[name] -= 1
        if _armed[name] > 0:
            return
    os.kill(os.getpid(), signal.SIGKILL)


_arm(os.environ.get(ENV, ""))
