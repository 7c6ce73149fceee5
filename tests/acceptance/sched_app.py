"""The worker app of the schedule acceptance tests (``tests/acceptance/test_schedules_fleet.py``):
``python -m durably worker --app tests.acceptance.sched_app --store URL``.

``SCHED_EFFECTS`` names a file to which each execution of the step appends one line,
``<run id> <pid>`` (appends of short lines are atomic), so a tick that ran twice shows.
"""

from __future__ import annotations

import os

import durably


@durably.step(name="sched.effect", retries=0)
def effect(run_id: str) -> None:
    with open(os.environ["SCHED_EFFECTS"], "a", encoding="utf-8") as log:
        log.write(f"{run_id} {os.getpid()}\n")


@durably.workflow(name="sched.race")
def race() -> str:
    run_id = durably.current_run().run_id
    effect(run_id)
    return run_id
