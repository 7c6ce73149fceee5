"""What a worker says about its runs, on the ``durably.worker`` logger.

INFO: a run claimed (or recovered from a worker that died or lost its lease),
completed, cancelled; WARNING: a step attempt that failed and will be retried, a
lease lost, a run released after a database error; ERROR: a run failed, with its
error and traceback. Arguments and results are never logged. Each line is built
only when its level is enabled.
"""

from __future__ import annotations

import logging

from durably.hooks import RunClaimed, RunEnded, RunLost, RunReleased, StepFinished, Subscriber
from durably.records import RunStatus

log = logging.getLogger("durably.worker")


def _about(run_id: str, workflow: str, **more: object) -> dict[str, object]:
    """The record attributes of a line about a run (see durably.logs.FIELDS)."""
    return {"run_id": run_id, "workflow": workflow, **more}


class WorkerLog(Subscriber):
    """The executor's own subscriber: its runs' lives as log lines."""

    def run_claimed(self, event: RunClaimed) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        about = _about(event.run_id, event.workflow, worker_id=event.owner)
        if event.recovered:
            log.info(
                "run %s (%s) recovered from a worker that died or lost its lease; attempt %d",
                event.run_id,
                event.workflow,
                event.attempt,
                extra=about,
            )
        else:
            what = "resumed" if event.replaying else "claimed"
            log.info(
                "run %s (%s) %s; attempt %d",
                event.run_id,
                event.workflow,
                what,
                event.attempt,
                extra=about,
            )

    def step_finished(self, event: StepFinished) -> None:
        if event.status != "retrying" or not log.isEnabledFor(logging.WARNING):
            return
        error = event.error
        log.warning(
            "run %s (%s): step %s attempt %d failed (%s: %s); retrying",
            event.run_id,
            event.workflow,
            event.step,
            event.attempt,
            error.type if error else "?",
            error.message if error else "",
            extra=_about(event.run_id, event.workflow, step=event.step, attempt=event.attempt),
        )

    def run_ended(self, event: RunEnded) -> None:
        error = event.error
        if event.status is RunStatus.FAILED:
            if log.isEnabledFor(logging.ERROR):
                detail = f"{error.type}: {error.message}" if error else "no error recorded"
                trace = f"\n{error.traceback.rstrip()}" if error and error.traceback else ""
                log.error(
                    "run %s (%s) failed after %.3fs: %s%s",
                    event.run_id,
                    event.workflow,
                    event.seconds,
                    detail,
                    trace,
                    extra=_about(event.run_id, event.workflow),
                )
        elif log.isEnabledFor(logging.INFO):
            reason = f": {error.message}" if error and event.status is RunStatus.CANCELLED else ""
            log.info(
                "run %s (%s) %s after %.3fs%s",
                event.run_id,
                event.workflow,
                event.status.value,
                event.seconds,
                reason,
                extra=_about(event.run_id, event.workflow),
            )

    def run_lost(self, event: RunLost) -> None:
        log.warning(
            "run %s (%s): lease lost (another worker took it over at epoch > %d); stopped here",
            event.run_id,
            event.workflow,
            event.epoch,
            extra=_about(event.run_id, event.workflow),
        )

    def run_released(self, event: RunReleased) -> None:
        about = _about(event.run_id, event.workflow)
        log.warning(
            "run %s (%s) released: %s", event.run_id, event.workflow, event.reason, extra=about
        )
