"""What a worker says about its runs, on the ``durably.worker`` logger.

INFO: a run claimed from the queue (or recovered from a worker that died or lost its
lease; a run this process started and executes at once is DEBUG), completed,
cancelled, a step attempt that failed and will be retried; WARNING: a lease lost, a
run released after a database error; ERROR: a run failed, with its
error and traceback. Arguments and results are never logged. Each line is built
only when its level is enabled. (A step's failed attempt is logged by the step loop,
where it happens: durably.runtime.steps.)
"""

from __future__ import annotations

import logging

from durably.hooks import Hooks, RunClaimed, RunEnded, RunLost, RunReleased, Subscriber
from durably.records import RunStatus

log = logging.getLogger("durably.worker")


def _about(run_id: str, workflow: str, **more: object) -> dict[str, object]:
    """The record attributes of a line about a run (see durably.logs.FIELDS)."""
    return {"run_id": run_id, "workflow": workflow, **more}


class WorkerLog(Subscriber):
    """The executor's own subscriber: its runs' lives as log lines.

    On the thread that emits, an event costs a test of the logger's level; a line to
    write is handed to the engine's hooks thread, which formats and writes it (a file
    or a terminal is slow next to a commit)."""

    def __init__(self, hooks: Hooks) -> None:
        self._later = hooks.later

    def run_claimed(self, event: RunClaimed) -> None:
        if log.isEnabledFor(logging.DEBUG if event.started_here else logging.INFO):
            self._later(_claimed, event)

    def run_ended(self, event: RunEnded) -> None:
        level = logging.ERROR if event.status is RunStatus.FAILED else logging.INFO
        if log.isEnabledFor(level):
            self._later(_ended, event)

    def run_lost(self, event: RunLost) -> None:
        if log.isEnabledFor(logging.WARNING):
            self._later(_lost, event)

    def run_released(self, event: RunReleased) -> None:
        if log.isEnabledFor(logging.WARNING):
            self._later(_released, event)


def _claimed(event: RunClaimed) -> None:
    about = _about(event.run_id, event.workflow, worker_id=event.owner)
    if event.recovered:
        text = "run %s (%s) recovered from a worker that died or lost its lease; attempt %d"
        log.info(text, event.run_id, event.workflow, event.attempt, extra=about)
    elif event.started_here:  # not taken from the queue: its start is the caller's news
        text = "run %s (%s) started here"
        log.debug(text, event.run_id, event.workflow, extra=about)
    else:
        what = "resumed" if event.replaying else "claimed"
        text = "run %s (%s) %s; attempt %d"
        log.info(text, event.run_id, event.workflow, what, event.attempt, extra=about)


def _ended(event: RunEnded) -> None:
    error, about = event.error, _about(event.run_id, event.workflow)
    if event.status is RunStatus.FAILED:
        detail = f"{error.type}: {error.message}" if error else "no error recorded"
        trace = f"\n{error.traceback.rstrip()}" if error and error.traceback else ""
        text = "run %s (%s) failed after %.3fs: %s%s"
        log.error(text, event.run_id, event.workflow, event.seconds, detail, trace, extra=about)
    else:
        reason = f": {error.message}" if error and event.status is RunStatus.CANCELLED else ""
        text = "run %s (%s) %s after %.3fs%s"
        status = event.status.value
        log.info(text, event.run_id, event.workflow, status, event.seconds, reason, extra=about)


def _lost(event: RunLost) -> None:
    text = "run %s (%s): lease lost (another worker took it over at epoch > %d); stopped here"
    log.warning(
        text, event.run_id, event.workflow, event.epoch, extra=_about(event.run_id, event.workflow)
    )


def _released(event: RunReleased) -> None:
    about = _about(event.run_id, event.workflow)
    log.warning("run %s (%s) released: %s", event.run_id, event.workflow, event.reason, extra=about)
