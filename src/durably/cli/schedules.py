"""``durably schedules ...``: the store's schedules, without the workflows' code."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import click

from durably.cli.messages import payload
from durably.cli.output import USAGE, Failure, when
from durably.cli.session import Session, common, with_session
from durably.scheduling import Schedule

COLUMNS: list[tuple[str, Callable[[Schedule], Any]]] = [
    ("id", lambda s: s.id),
    ("workflow", lambda s: s.workflow),
    ("when", lambda s: s.spec.describe()),
    ("next fire", lambda s: "paused" if s.paused else when(s.next_fire)),
    ("started", lambda s: s.counts["started"]),
    ("skipped", lambda s: s.counts["skipped"]),
    ("buffered", lambda s: s.counts["buffered"]),
    ("missed", lambda s: s.counts["missed"]),
    ("last run", lambda s: s.last_run_id),
]


def _moment(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        message = f"{flag} must be an ISO 8601 time (2026-03-08T09:00Z), not {value!r}"
        raise Failure(message, USAGE) from None
    if moment.tzinfo is None:
        raise Failure(f"{flag} needs a zone (2026-03-08T09:00Z or +01:00): {value!r}", USAGE)
    return moment


def timing(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options of ``create`` and ``update``."""
    options = [
        click.option("--cron", help="A cron expression (5 fields, or 6 with seconds; @daily)."),
        click.option("--every", metavar="DURATION", help="An interval (15m), from the epoch."),
        click.option("--offset", metavar="DURATION", help="With --every: shift the ticks."),
        click.option("--tz", help="The IANA zone the cron expression is read in (UTC)."),
        click.option("--overlap", help="skip, buffer_one, buffer_all, allow_all, cancel_other."),
        click.option("--catchup", help="After downtime: none, latest (default) or all."),
        click.option("--catchup-window", metavar="DURATION", help="How far back (1d)."),
        click.option("--jitter", metavar="DURATION", help="Fire up to this late, per tick."),
        click.option("--start-at", metavar="ISO", help="No tick before this time."),
        click.option("--end-at", metavar="ISO", help="No tick after this time."),
        click.option("--queue", help="The queue its runs wait in."),
        click.option("--priority", type=int, help="Higher runs are claimed first."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _options(given: dict[str, Any]) -> dict[str, Any]:
    chosen = {k: v for k, v in given.items() if v is not None}
    for key in ("start_at", "end_at"):
        if key in chosen:
            chosen[key] = _moment(chosen[key], "--" + key.replace("_", "-"))
    return chosen


def _arguments(text: str | None) -> tuple[list[Any], dict[str, Any]]:
    given = payload(text, "the arguments")
    if text is None:
        return [], {}
    if isinstance(given, list):
        return given, {}
    if isinstance(given, dict):
        return [], given
    return [given], {}


def _show(s: Session, schedule: Schedule) -> None:
    out = s.output
    if out.format != "table":
        out.write_json(schedule)
        return
    out.table([c for c, _ in COLUMNS], [[get(schedule) for _, get in COLUMNS]])


@click.group()
def schedules() -> None:
    """Schedules: list, show, create, update, pause, resume, trigger, backfill, delete."""


@schedules.command("list")
@common
@with_session
def list_schedules(s: Session) -> None:
    """Every schedule, with its next fire time and its counts of ticks."""
    found = s.engine().schedules.list()
    s.output.records(found, COLUMNS, ids=lambda x: x.last_run_id or "")


@schedules.command()
@common
@click.argument("schedule_id")
@with_session
def show(s: Session, schedule_id: str) -> None:
    """The schedule, its next 5 fire times in its zone and its newest runs."""
    described = s.engine().schedules.describe(schedule_id)
    out, sched = s.output, described.schedule
    if out.format in ("json", "jsonl"):
        out.write_json(described)
        return
    out.fields(
        [
            ("id", sched.id),
            ("workflow", sched.workflow),
            ("when", sched.spec.describe()),
            ("overlap", sched.spec.overlap),
            ("catch-up", f"{sched.spec.catchup} within {sched.spec.catchup_window:g}s"),
            ("jitter", f"{sched.spec.jitter:g}s" if sched.spec.jitter else None),
            ("from", when(sched.spec.start_at)),
            ("until", when(sched.spec.end_at)),
            ("queue", sched.spec.queue),
            ("paused", f"yes: {sched.note or ''}" if sched.paused else None),
            ("ticks", ", ".join(f"{k} {v}" for k, v in sched.counts.items())),
        ]
    )
    out.table(["next fire times"], [[t.isoformat()] for t in described.upcoming])
    rows = [[t.run_id, t.kind, when(t.nominal), when(t.fired_at), st] for t, st in described.recent]
    out.table(["run", "kind", "tick", "fired", "status"], rows, title="newest runs")


@schedules.command()
@common
@click.argument("schedule_id")
@click.argument("workflow")
@click.argument("arguments", required=False, metavar="[JSON | @FILE | -]")
@timing
@click.option("--paused", is_flag=True, help="Create it paused.")
@click.option("--note", help="A note (why it is paused).")
@with_session
def create(
    s: Session,
    schedule_id: str,
    workflow: str,
    arguments: str | None,
    paused: bool,
    note: str | None,
    **given: Any,
) -> None:
    """Create SCHEDULE_ID, starting WORKFLOW (by name) with JSON ARGUMENTS."""
    args, kwargs = _arguments(arguments)
    engine = s.engine()
    made = engine.schedules.create(
        schedule_id, workflow, args=args, kwargs=kwargs, paused=paused, note=note,
        **_options(given),
    )  # fmt: skip
    _show(s, made)


@schedules.command()
@common
@click.argument("schedule_id")
@click.option("--args", "arguments", metavar="JSON | @FILE | -", help="New arguments.")
@timing
@with_session
def update(s: Session, schedule_id: str, arguments: str | None, **given: Any) -> None:
    """Change a schedule; the pending tick stays unless its timing changes."""
    args, kwargs = _arguments(arguments)
    changes = _options(given)
    if arguments is not None:
        changes.update(args=args, kwargs=kwargs)
    _show(s, s.engine().schedules.update(schedule_id, **changes))


@schedules.command()
@common
@click.argument("schedule_id")
@click.option("--note", help="Why it is paused.")
@with_session
def pause(s: Session, schedule_id: str, note: str | None) -> None:
    """Stop firing ticks."""
    _show(s, s.engine().schedules.pause(schedule_id, note=note))


@schedules.command()
@common
@click.argument("schedule_id")
@with_session
def resume(s: Session, schedule_id: str) -> None:
    """Fire ticks again, from the next one."""
    _show(s, s.engine().schedules.resume(schedule_id))


@schedules.command()
@common
@click.argument("schedule_id")
@with_session
def trigger(s: Session, schedule_id: str) -> None:
    """Start a run now (apart from the ticks); prints its id."""
    handle = s.engine().schedules.trigger(schedule_id)
    if s.output.format in ("json", "jsonl"):
        s.output.write_json({"run_id": handle.run_id, "schedule": schedule_id})
    else:
        s.output.out.write(handle.run_id + "\n")


@schedules.command()
@common
@click.argument("schedule_id")
@click.option("--start", "start", required=True, metavar="ISO", help="The first tick's time.")
@click.option("--end", "end", required=True, metavar="ISO", help="The last tick's time.")
@with_session
def backfill(s: Session, schedule_id: str, start: str, end: str) -> None:
    """Start the runs of the ticks from START to END that never ran."""
    low, high = _moment(start, "--start"), _moment(end, "--end")
    assert low is not None and high is not None
    done = s.engine().schedules.backfill(schedule_id, low, high)
    if s.output.format in ("json", "jsonl"):
        s.output.write_json(done)
    else:
        s.output.out.write(f"created {done.created} run(s); {done.existed} tick(s) had run\n")


@schedules.command()
@common
@click.argument("schedule_id")
@with_session
def delete(s: Session, schedule_id: str) -> None:
    """Delete the schedule (its runs stay)."""
    s.engine().schedules.delete(schedule_id)
    if s.output.format in ("json", "jsonl"):
        s.output.write_json({"deleted": schedule_id})
    else:
        s.output.out.write(f"deleted schedule {schedule_id}\n")
