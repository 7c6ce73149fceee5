"""``durably runs list|show|result|steps|history|events``: reading runs from the database."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import click

from durably.cli.filters import run_filters, seconds, selection
from durably.cli.output import (
    CANCELLED,
    FAILED,
    NOT_ENDED,
    NOT_FOUND,
    OK,
    REFUSED,
    TIMED_OUT,
    Failure,
    Output,
    note,
    took,
    when,
)
from durably.cli.session import Session, common, with_session
from durably.errors import NoWorker, WorkflowCancelled, WorkflowFailed, WorkflowTimedOut
from durably.records import Run, RunStatus, StepRecord, timestamp
from durably.serialization import loads

Columns = list[tuple[str, Callable[[Any], Any]]]
RUN_COLUMNS: Columns = [
    ("RUN ID", lambda r: r.run_id),
    ("WORKFLOW", lambda r: r.workflow),
    ("STATUS", lambda r: r.status.value),
    ("QUEUE", lambda r: r.queue),
    ("ATTEMPTS", lambda r: r.attempts),
    ("CREATED", lambda r: when(r.created_at)),
    ("UPDATED", lambda r: when(r.updated_at)),
]
STEP_COLUMNS: Columns = [
    ("SEQ", lambda s: s.seq),
    ("KIND", lambda s: s.kind),
    ("NAME", lambda s: s.name),
    ("STATUS", lambda s: s.status),
    ("ATTEMPTS", lambda s: s.attempts),
    ("STARTED", lambda s: when(s.started_at)),
    ("DURATION", lambda s: took(s.started_at, s.finished_at) if s.status != "waiting" else ""),
]


def exit_code(run: Run) -> int:
    """The exit code a run's state means: 0 completed (or not ended), 1 failed, 2
    cancelled, 5 timed out."""
    if run.status is RunStatus.FAILED:
        return FAILED
    if run.status is RunStatus.CANCELLED:
        timed_out = run.error is not None and run.error.type == WorkflowTimedOut.__name__
        return TIMED_OUT if timed_out else CANCELLED
    return OK


@click.group()
@common
def runs() -> None:
    """Find, inspect, cancel, retry and fork runs (from the database alone)."""


@runs.command("list")
@common
@run_filters
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--cursor", metavar="TOKEN", help="The next page: the cursor a page printed.")
@with_session
def list_runs(s: Session, limit: int, cursor: str | None, **filters: Any) -> None:
    """Runs, newest first, a page at a time (the next page's cursor goes to stderr)."""
    page = s.engine().list_runs(**selection(filters), limit=limit, cursor=cursor)
    s.output.records(page, RUN_COLUMNS, ids=lambda r: r.run_id)
    if page.cursor is not None:
        note(f"more runs: --cursor {page.cursor}")


@runs.command()
@common
@click.argument("run_id")
@click.option("--follow", "-f", is_flag=True, help="Stream new journal rows until it ends.")
@click.option("--poll", type=float, default=0.25, hidden=True)
@with_session
def show(s: Session, run_id: str, follow: bool, poll: float) -> None:
    """A run: its state, what it waits for, its journal, input, output and error.

    Exits 0 completed (or not ended), 1 failed, 2 cancelled, 4 not found, 5 timed out.
    """
    engine = s.engine()
    run = engine.get_run(run_id)
    if follow:
        run = _follow(s, run, poll)
    else:
        _show(s.output, run, engine.steps(run_id), engine.waiting_for(run_id))
    raise SystemExit(exit_code(run))


def _show(out: Output, run: Run, steps: list[StepRecord], waiting: str | None) -> None:
    if out.format in ("json", "jsonl"):
        out.write_json({"run": run, "waiting_for": waiting, "steps": steps})
        return
    if out.format == "ids":
        out.out.write(run.run_id + "\n")
        return
    out.fields(_header(run, waiting))
    if steps:
        out.records(steps, STEP_COLUMNS, title="journal")
    out.fields([("input", json.dumps(run.input)), ("output", _json_or_none(run))])
    if run.error is not None:
        out.text(f"error: {run.error.type}: {run.error.message}", style="red")
        if run.error.traceback:
            out.text(run.error.traceback.rstrip())


def _json_or_none(run: Run) -> str | None:
    return None if run.status is not RunStatus.COMPLETED else json.dumps(run.output)


def _header(run: Run, waiting: str | None) -> list[tuple[str, Any]]:
    lease = None
    if run.owner is not None:
        lease = f"{run.owner} (epoch {run.epoch}, until {when(run.lease_until)})"
    return [
        ("run", run.run_id),
        ("workflow", run.workflow),
        ("status", run.status.value),
        ("state", waiting),
        ("blocked", run.blocked_reason),
        ("queue", run.queue if run.priority == 0 else f"{run.queue} (priority {run.priority})"),
        ("lease", lease),
        ("attempts", run.attempts),
        ("parent", run.parent_id),
        ("key", run.idempotency_key),
        ("continued as", run.continued_to),
        ("created", when(run.created_at)),
        ("updated", when(run.updated_at)),
    ]


def _follow(s: Session, run: Run, poll: float) -> Run:
    """Print the run, then each journal row as it appears or changes, until it ends."""
    engine, out = s.engine(), s.output
    seen: dict[int, tuple[str, int]] = {}
    if out.format == "table":
        out.fields(_header(run, engine.waiting_for(run.run_id)))
    while True:
        steps = engine.steps(run.run_id)
        fresh = [st for st in steps if seen.get(st.seq) != (st.status, st.attempts)]
        seen.update({st.seq: (st.status, st.attempts) for st in fresh})
        if fresh and out.format == "jsonl":
            for step in fresh:
                out.write_json({"step": step})
        elif fresh and out.format == "table":
            out.table(
                [n for n, _ in STEP_COLUMNS], [[get(st) for _, get in STEP_COLUMNS] for st in fresh]
            )
        if run.status.terminal:
            break
        time.sleep(poll)
        run = engine.get_run(run.run_id)
    if out.format == "json":
        out.write_json({"run": run, "waiting_for": None, "steps": steps})
    elif out.format == "jsonl":
        out.write_json({"run": run})
    elif out.format == "table":
        out.fields([("ended", run.status.value), ("output", _json_or_none(run))])
        if run.error is not None:
            out.text(f"error: {run.error.type}: {run.error.message}", style="red")
    else:
        out.out.write(run.run_id + "\n")
    return run


@runs.command()
@common
@click.argument("run_id")
@click.option("--wait", is_flag=True, help="Wait for the run to end.")
@click.option("--timeout", callback=seconds, default=None, metavar="SECONDS",
              help="With --wait: give up after this long (exit 5).")  # fmt: skip
@with_session
def result(s: Session, run_id: str, wait: bool, timeout: float | None) -> None:
    """The run's result as JSON. Exits 0 completed, 1 failed, 2 cancelled, 4 not found,
    5 timed out, 8 not ended yet (without --wait)."""
    engine = s.engine()
    run = engine.get_run(run_id)
    if not run.status.terminal and not wait:
        raise Failure(f"run {run_id} is {run.status.value}: it has no result yet", NOT_ENDED)
    try:
        value = engine.handle(run_id).result(timeout=timeout)
    except TimeoutError:
        raise Failure(f"run {run_id} did not end within {timeout:g}s", TIMED_OUT) from None
    except NoWorker as exc:
        raise Failure(str(exc), REFUSED) from None
    except WorkflowFailed as exc:
        raise Failure(str(exc), FAILED) from None
    except WorkflowTimedOut as exc:
        raise Failure(f"run {run_id} timed out: {exc}", TIMED_OUT) from None
    except WorkflowCancelled as exc:
        raise Failure(f"run {run_id} was cancelled: {exc}", CANCELLED) from None
    s.output.write_json(value)


@runs.command()
@common
@click.argument("run_id")
@with_session
def steps(s: Session, run_id: str) -> None:
    """The run's journal: every step, timer, signal, child and event, in order."""
    s.output.records(s.engine().steps(run_id), STEP_COLUMNS)


@runs.command()
@common
@click.argument("run_id")
@with_session
def history(s: Session, run_id: str) -> None:
    """The run's life: created, claimed, attempts, suspensions, releases, ... finished."""
    events = s.engine().history(run_id)
    columns = [
        ("AT", lambda e: when(e.at, precise=True)),
        ("EVENT", lambda e: e.kind),
        ("DETAIL", lambda e: ", ".join(f"{k}={v}" for k, v in e.detail.items())),
    ]
    s.output.records(events, columns)


@runs.command()
@common
@click.argument("run_id")
@click.argument("key", required=False)
@with_session
def events(s: Session, run_id: str, key: str | None) -> None:
    """The events the run set (``durably.set_event``), or the value of one."""
    engine = s.engine()
    engine.get_run(run_id)  # RunNotFound before an empty list
    found = [
        {"key": k, "value": loads(v, what=f"event {k!r}"), "set_at": timestamp(at)}
        for k, v, at in engine.store.events(run_id)
        if key is None or k == key
    ]
    if key is not None and not found:
        raise Failure(f"run {run_id} has set no event {key!r}", NOT_FOUND)
    if key is not None and s.output.format in ("json", "jsonl", "table"):
        s.output.write_json(found[0]["value"])
        return
    columns = [
        ("KEY", lambda e: e["key"]),
        ("VALUE", lambda e: json.dumps(e["value"])),
        ("SET AT", lambda e: when(e["set_at"])),
    ]
    s.output.records(found, columns)
