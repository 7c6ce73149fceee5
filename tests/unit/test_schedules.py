"""Schedules without a database: cron across DST, intervals, jitter, the tick policy."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from durably.errors import ScheduleError
from durably.schedules import MAX_ID, ScheduleSpec, make_spec, tick_run_id, with_changes
from durably.ticking import (
    MAX_BUFFER,
    ON_TIME,
    ScheduleState,
    advance,
    first_state,
    resumed,
    retimed,
)


def utc(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[misc, arg-type]


def ticks(spec: ScheduleSpec, start: float, end: float) -> list[str]:
    """The nominal ticks in (start, end], as UTC 'MM-DD HH:MM'."""
    out, t = [], spec.next_after(start)
    while t is not None and t <= end:
        out.append(datetime.fromtimestamp(t, UTC).strftime("%m-%d %H:%M"))
        t = spec.next_after(t)
    return out


def cron(expr: str, tz: str = "UTC", **options: Any) -> ScheduleSpec:
    return make_spec("s", "wf", "{}", cron=expr, tz=tz, **options)


# -- DST: the peers' failures --------------------------------------------------------------
def test_a_daily_job_in_the_repeated_hour_fires_once() -> None:
    # 2026-11-01, New York: 01:00-02:00 happens twice; 01:30 EDT is 05:30 UTC.
    spec = cron("30 1 * * *", "America/New_York")
    assert ticks(spec, utc(2026, 10, 31, 12), utc(2026, 11, 2, 12)) == [
        "11-01 05:30",
        "11-02 06:30",
    ]


def test_a_daily_job_in_the_spring_gap_fires_when_the_gap_ends() -> None:
    # 2026-03-08, New York: 02:00-03:00 does not exist; 03:00 EDT is 07:00 UTC.
    spec = cron("30 2 * * *", "America/New_York")
    assert ticks(spec, utc(2026, 3, 7, 12), utc(2026, 3, 9, 12)) == ["03-08 07:00", "03-09 06:30"]


def test_frequent_jobs_follow_elapsed_time_across_the_repeated_hour() -> None:
    spec = cron("*/30 * * * *", "America/New_York")
    # From 00:50 EDT: 01:00 and 01:30 EDT, then 01:00 and 01:30 EST, then 02:00 EST.
    assert ticks(spec, utc(2026, 11, 1, 4, 50), utc(2026, 11, 1, 7, 0)) == [
        "11-01 05:00",
        "11-01 05:30",
        "11-01 06:00",
        "11-01 06:30",
        "11-01 07:00",
    ]


def test_an_hourly_job_with_a_half_hour_shift_misses_nothing() -> None:
    spec = cron("0 * * * *", "Australia/Lord_Howe")
    # Spring, 2026-10-04: 02:00 local does not exist (02:00 -> 02:30): fired at 02:30.
    spring = ticks(spec, utc(2026, 10, 3, 13, 0), utc(2026, 10, 3, 17, 0))
    assert spring == ["10-03 13:30", "10-03 14:30", "10-03 15:30", "10-03 16:00", "10-03 17:00"]
    # Autumn, 2026-04-05: 01:30-02:00 happens twice; every hour still fires once.
    autumn = ticks(spec, utc(2026, 4, 4, 13, 0), utc(2026, 4, 4, 17, 30))
    assert autumn == ["04-04 14:00", "04-04 15:30", "04-04 16:30", "04-04 17:30"]


def test_cron_features() -> None:
    start = utc(2026, 1, 1)
    assert ticks(cron("0 0 15W * *"), start, utc(2026, 3, 1)) == ["01-15 00:00", "02-16 00:00"]
    assert ticks(cron("0 0 L * *"), start, utc(2026, 3, 1)) == ["01-31 00:00", "02-28 00:00"]
    assert ticks(cron("0 0 * * MON#2"), start, utc(2026, 3, 1)) == ["01-12 00:00", "02-09 00:00"]
    assert ticks(cron("@monthly"), start, utc(2026, 3, 1)) == ["02-01 00:00", "03-01 00:00"]
    assert ticks(cron("0 9 * * MON-FRI", "Europe/Paris"), start, utc(2026, 1, 3)) == [
        "01-01 08:00",
        "01-02 08:00",
    ]
    seconds = cron("*/20 * * * * *")
    assert seconds.next_after(start) == start + 20


def test_intervals_are_anchored_at_the_epoch_plus_offset() -> None:
    spec = make_spec("s", "wf", "{}", every="15m", offset="5m")
    assert spec.next_after(utc(2026, 3, 8, 6, 59)) == utc(2026, 3, 8, 7, 5)
    assert spec.next_after(utc(2026, 3, 8, 7, 5)) == utc(2026, 3, 8, 7, 20)
    bounded = make_spec("s", "wf", "{}", every="1h", start_at=utc(2026, 1, 1, 10, 30))
    assert bounded.next_after(0) == utc(2026, 1, 1, 11)
    ended = make_spec("s", "wf", "{}", every="1h", end_at=utc(2026, 1, 1, 10))
    assert ended.next_after(utc(2026, 1, 1, 9, 30)) == utc(2026, 1, 1, 10)
    assert ended.next_after(utc(2026, 1, 1, 10)) is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cron": "123 * * * *"}, "bad minute '123'"),
        ({"cron": "0 0 * * FOO"}, "bad day-of-week 'FOO'"),
        ({"cron": "* * *"}, "has 3 fields"),
        ({"cron": "0 * * * *", "tz": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"every": "0s"}, "every must be above zero"),
        ({"every": "soon"}, "every: invalid duration"),
        ({}, "give one of cron= or every="),
        ({"cron": "@daily", "every": "1h"}, "give one of cron= or every="),
        ({"every": "1h", "overlap": "queue"}, "overlap must be one of"),
        ({"every": "1h", "catchup": "some"}, "catchup must be one of"),
        (
            {"every": "1h", "start_at": utc(2026, 2, 1), "end_at": utc(2026, 1, 1)},
            "end_at must be after start_at",
        ),
        ({"every": "1h", "start_at": datetime(2026, 1, 1)}, "must be timezone-aware"),
        ({"every": "1h", "start_at": 1e18}, "start_at is out of range"),
        ({"every": "1h", "catchup_window": 0}, "catchup_window must be at least 10s, not 0s"),
        ({"every": "1h", "priority": 1.5}, "priority must be an int"),
        ({"every": "1h", "tz": None}, "an IANA name such as"),
        ({"every": "1h", "queue": ""}, "queue must be a non-blank string"),
        ({"cron": "0 * * * *", "offset": "5m"}, "offset= shifts an interval"),
        ({"every": "1h", "tz": "Europe/Paris"}, "an interval \\(every=\\) ignores it"),
    ],
)
def test_bad_specs_are_schedule_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        make_spec("s", "wf", "{}", **options)


def test_a_new_schedules_id_leaves_room_for_its_ticks_run_ids() -> None:
    longest = "s" * MAX_ID
    spec = make_spec(longest, "wf", "{}", every="1m")
    assert len(tick_run_id(longest, utc(2026, 1, 1) + 0.123456)) <= 200
    assert len(f"{longest}@trigger-{'0' * 32}") <= 200  # a trigger's run id
    with pytest.raises(ScheduleError, match=f"at most {MAX_ID} characters"):
        make_spec(longest + "s", "wf", "{}", every="1m")
    assert with_changes(spec, None, queue="q").queue == "q"


def test_jitter_is_the_same_everywhere_and_under_the_gap() -> None:
    spec = make_spec("reports", "wf", "{}", every="1m", jitter="10m")
    nominal = utc(2026, 1, 1, 9)
    assert spec.fire_at(nominal) == spec.fire_at(nominal)  # derived, not random
    assert nominal <= spec.fire_at(nominal) < nominal + 60  # bounded by the next tick
    other = make_spec("other", "wf", "{}", every="1m", jitter="10m")
    assert other.fire_at(nominal) != spec.fire_at(nominal)


def test_tick_ids_are_derived_from_the_schedule_and_the_instant() -> None:
    assert (
        tick_run_id("reports.daily", utc(2026, 11, 1, 5, 30))
        == "reports.daily@2026-11-01T05:30:00Z"
    )
    assert tick_run_id("s", utc(2026, 1, 1) + 0.25) == "s@2026-01-01T00:00:00.25Z"


def test_a_change_of_timing_drops_what_only_the_old_one_used() -> None:
    paris = make_spec("s", "wf", "{}", cron="0 9 * * *", tz="Europe/Paris")
    assert with_changes(paris, None, every="1h").tz == "UTC"
    shifted = make_spec("s", "wf", "{}", every="1h", offset="5m")
    assert with_changes(shifted, None, cron="@daily").offset == 0
    with pytest.raises(ScheduleError, match="offset= shifts an interval"):
        with_changes(paris, None, offset="5m")


def test_changes_keep_or_move_the_timing() -> None:
    spec = make_spec("s", "wf", "{}", cron="0 * * * *")
    assert with_changes(spec, None, queue="other").timing() == spec.timing()
    moved = with_changes(spec, None, every="30m")
    assert moved.cron is None and moved.every == 1800
    assert moved.timing() != spec.timing()


# -- the tick policy -----------------------------------------------------------------------
T0 = utc(2026, 1, 1)


def overrun(overlap: str) -> tuple[ScheduleState, list[list[float]]]:
    """A minutely schedule whose first run goes on through the next three ticks, then ends."""
    spec = make_spec("s", "wf", "{}", every="1m", overlap=overlap)
    state = first_state(spec, T0 - 1)
    started = []
    for minute in range(5):  # ticks at T0 .. T0+4m; the first run ends after T0+3m
        plan = advance(spec, state, T0 + 60 * minute + 0.1, running=0 < minute <= 3)
        started.append(plan.starts)
        state = plan.state
    return state, started


def test_skip_drops_ticks_while_the_run_goes_on() -> None:
    state, started = overrun("skip")
    assert started == [[T0], [], [], [], [T0 + 240]]
    assert (state.started, state.skipped, state.buffered) == (2, 3, 0)


def test_buffer_one_keeps_exactly_one_tick() -> None:
    state, started = overrun("buffer_one")
    # While the run overruns: T0+60 is buffered, T0+120 and T0+180 skipped. At T0+240
    # it has ended: the buffered tick starts, and T0+240 waits behind that one.
    assert started == [[T0], [], [], [], [T0 + 60]]
    assert (state.buffered, state.skipped) == (2, 2)
    assert state.buffer == (T0 + 240,)


def test_buffer_all_and_allow_all() -> None:
    state, started = overrun("buffer_all")
    assert started[4] == [T0 + 60] and state.buffer == (T0 + 120, T0 + 180, T0 + 240)
    assert len(state.buffer) <= MAX_BUFFER
    state, started = overrun("allow_all")
    assert [len(s) for s in started] == [1, 1, 1, 1, 1] and state.skipped == 0


def test_cancel_other_cancels_and_starts_the_newest_after() -> None:
    spec = make_spec("s", "wf", "{}", every="1m", overlap="cancel_other")
    plan = advance(spec, first_state(spec, T0 - 61), T0 + 0.1, running=True)
    assert plan.cancel_last and plan.starts == [] and plan.state.buffer == (T0,)
    later = advance(spec, plan.state, T0 + 1, running=False)  # the cancelled run ended
    assert later.starts == [T0]


@pytest.mark.parametrize(
    ("catchup", "starts", "missed"),
    [("none", [], 180), ("latest", [T0 + 179 * 60], 179), ("all", "first 100", 0)],
)
def test_catch_up_after_downtime(catchup: str, starts: Any, missed: int) -> None:
    # Down for 3 hours over a minutely schedule (the newest tick 30 s late); the window
    # keeps 4 hours.
    options: dict[str, Any] = {"catchup": catchup, "catchup_window": "4h", "overlap": "allow_all"}
    spec = make_spec("s", "wf", "{}", every="1m", **options)
    now = T0 + 179 * 60 + 30
    plan = advance(spec, first_state(spec, T0 - 1), now, running=False)
    if starts == "first 100":  # no burst beyond a pass: the rest goes next pass
        assert plan.starts == [T0 + 60 * i for i in range(100)]
        assert plan.state.next_at == T0 + 6000
    else:
        assert plan.starts == starts
    assert plan.state.missed == missed


def test_ticks_past_the_window_are_missed_never_run() -> None:
    options: dict[str, Any] = {"catchup": "all", "catchup_window": "2h", "overlap": "allow_all"}
    spec = make_spec("s", "wf", "{}", every="1h", **options)
    plan = advance(spec, first_state(spec, T0 - 1), T0 + timedelta(days=1).total_seconds(), False)
    assert plan.starts == [T0 + 22 * 3600, T0 + 23 * 3600, T0 + 24 * 3600]
    assert plan.state.missed == 22


def test_a_stored_window_shorter_than_on_time_still_fires() -> None:
    # A spec as an older version stored it: a window of 0 missed every tick handled late.
    spec = ScheduleSpec(id="s", workflow="wf", every=60.0, catchup_window=0.0)
    plan = advance(spec, first_state(spec, T0 - 1), T0 + 0.5, running=False)
    assert plan.starts == [T0] and plan.state.missed == 0
    late = advance(spec, first_state(spec, T0 - 1), T0 + ON_TIME + 1, running=False)
    assert late.starts == [] and late.state.missed == 1


def _jittered() -> tuple[ScheduleSpec, float]:
    """An hourly spec with a jitter, and a moment after T0 before T0's tick fires."""
    spec = make_spec("jittered", "wf", "{}", every="1h", jitter="50m")
    fire = spec.fire_at(T0)
    assert fire > T0 + 2, "pick another id: this tick fires too close to its instant"
    return spec, (T0 + fire) / 2


def test_a_timing_change_keeps_a_tick_that_has_not_fired_yet() -> None:
    spec, now = _jittered()
    pending = first_state(spec, T0 - 1)
    assert pending.next_at == T0  # its instant is past at ``now``, its fire time is not
    bounded = with_changes(spec, None, end_at=T0 + 30 * 86400)
    assert retimed(spec, bounded, pending, now).next_at == T0
    handled = replace(pending, next_at=T0 + 3600)  # T0's tick was handled already
    assert retimed(spec, bounded, handled, now).next_at == T0 + 3600
    assert retimed(spec, spec, handled, now) == handled  # the same timing: unchanged


def test_resume_goes_on_from_the_first_tick_still_to_fire() -> None:
    spec = make_spec("s", "wf", "{}", every="1h", overlap="buffer_all", catchup_window="2h")
    paused = ScheduleState(paused=True, next_at=T0, buffer=(T0 - 5 * 3600, T0 - 3600))
    state = resumed(spec, paused, T0 + 5 * 3600 + 60)
    assert not state.paused and state.next_at == T0 + 6 * 3600  # none of the pause's ticks
    assert state.buffer == () and state.missed == 2  # buffered before it: past the window
    recent = resumed(spec, replace(paused, buffer=(T0,)), T0 + 1800)
    assert recent.buffer == (T0,) and recent.due_at == T0 + 1800  # within it: starts now
