"""Schedules: a declared cron schedule, an interval made at run time, a manual
trigger and a backfill, on one SQLite file.

    python examples/schedules.py
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime

import durably


@durably.schedule(cron="0 9 * * MON-FRI", tz="Europe/Paris", id="reports.daily")
@durably.workflow(name="reports.build")
def build_report(region: str = "eu") -> str:
    info = durably.schedule_info()
    when = "unscheduled" if info is None else f"{info.kind} of {info.nominal:%Y-%m-%d %H:%M}Z"
    return f"report {region} ({when})"


def main() -> None:
    with tempfile.TemporaryDirectory() as here, durably.Engine(f"{here}/s.db") as engine:
        # The declared schedule was applied when the engine launched.
        daily = engine.schedules.describe("reports.daily")
        print("reports.daily next fires:", [f"{t:%a %H:%M %Z}" for t in daily.upcoming[:3]])

        # One made at run time: every second, anchored on whole seconds.
        engine.schedules.create("reports.tick", build_report, args=("us",), every="1s")
        while engine.schedules.get("reports.tick").counts["started"] < 2:
            time.sleep(0.05)
        engine.schedules.pause("reports.tick", note="enough")
        tick = engine.schedules.describe("reports.tick").recent[-1][0]
        print("tick run:", engine.handle(tick.run_id).result(timeout=10))

        # Run now, apart from the ticks; then the ticks of a past morning that never ran.
        now = engine.schedules.trigger("reports.daily").result(timeout=10)
        print("trigger:", now[: now.index(" of ")] + ")")
        start = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
        end = datetime(2026, 3, 6, 23, 0, tzinfo=UTC)
        first = engine.schedules.backfill("reports.daily", start, end)
        again = engine.schedules.backfill("reports.daily", start, end)
        print(f"backfill: created {first.created}, then {again.created} ({again.existed} existed)")
        oldest = engine.schedules.describe("reports.daily", recent=10).recent[-1][0]
        print("backfilled run:", engine.handle(oldest.run_id).result(timeout=10))


if __name__ == "__main__":
    main()
