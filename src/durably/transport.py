"""Transports: another way for a fleet to hear that a run is runnable (a message
broker), while the database keeps the state, the leases and the timers.

An engine given ``transport=`` hands itself to :meth:`Transport.attach`, which
subscribes to its hooks and publishes a wake-up (a run id) after each commit that
made a run runnable. In the processes that consume the wake-ups, the transport
launches the engine with a :class:`Gate`: its executor then claims a run only when a
wake-up names it, or from the database while :meth:`Gate.polling` says the broker
cannot be reached. ``durably.contrib.celery`` is one (docs/celery.md).
"""

from __future__ import annotations

from typing import Protocol


class Gate(Protocol):
    """What an executor fed by a transport asks of it."""

    #: How many runs this process executes at once (the consumer's own concurrency).
    slots: int

    def polling(self) -> bool:
        """Whether to claim from the database now, as ``durably worker`` does (the
        broker is out of reach: nothing would deliver the wake-ups)."""
        ...


class Transport(Protocol):
    """Delivers wake-ups; given to ``Engine(transport=...)``."""

    def attach(self, engine: object) -> None:
        """Serve ``engine``: publish its wake-ups (and, in the consumers, run its runs)."""
        ...


__all__ = ["Gate", "Transport"]
