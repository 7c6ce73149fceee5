"""Tools for testing with durably: an engine with virtual time (:class:`TestEngine`,
:class:`VirtualClock`), replay checks before a deploy (:func:`replay_check`), and the
store contract (:mod:`durably.testing.contract`)."""

from durably.testing.clock import VirtualClock
from durably.testing.engine import TestEngine
from durably.testing.replay import replay_check

__all__ = ["TestEngine", "VirtualClock", "replay_check"]
