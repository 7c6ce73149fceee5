"""Tools for testing with durably: an engine with virtual time (:class:`TestEngine`,
:class:`VirtualClock`), crashes at every checkpoint (:func:`crash_sweep`), replay
checks before a deploy (:func:`replay_check`), and the store contract
(:mod:`durably.testing.contract`)."""

from durably.testing.clock import VirtualClock
from durably.testing.crashes import CrashPoint, CrashSweepFailed, SweepReport, crash_sweep
from durably.testing.engine import TestEngine
from durably.testing.replay import replay_check

__all__ = [
    "CrashPoint",
    "CrashSweepFailed",
    "SweepReport",
    "TestEngine",
    "VirtualClock",
    "crash_sweep",
    "replay_check",
]
