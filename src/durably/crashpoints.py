"""Named crash points for durability tests.

In production every :func:`hit` is a dictionary miss. A test sets
``DURABLY_CRASH_AT="step.after_body:3"`` (name and the k-th hit, default 1) in a
child process's environment and that process SIGKILLs itself at that moment, so
recovery is proven against a real, abrupt death. In one process, :func:`watching`
tells a test of every hit, on the thread that passes it (``durably.testing``'s
crash_sweep counts them and crashes an execution there).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator

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
_heard: list[Callable[[str], None]] = []  # told of every hit


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
        left = _armed.get(name)
        if left is None:  # disarmed just now
            return
        for hear in _heard:
            hear(name)
        _armed[name] = left - 1
        if left > 1:
            return
    os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def watching(hear: Callable[[str], None]) -> Iterator[None]:
    """Call ``hear(name)`` at every crash point passed in this process meanwhile, on
    the thread passing it; what ``hear`` raises is raised there."""
    with _lock:
        saved = dict(_armed)
        _armed.update(dict.fromkeys(POINTS + SCHEDULE_POINTS, 2**62))
        _armed.update(saved)
        _heard.append(hear)
    try:
        yield
    finally:
        with _lock:
            _heard.remove(hear)
            _armed.clear()
            _armed.update(saved)


_arm(os.environ.get(ENV, ""))
