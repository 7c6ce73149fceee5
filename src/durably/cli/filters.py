"""The filters of ``runs list``, shared by the bulk ``cancel`` and ``retry --where``."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import click

from durably.durations import parse_duration
from durably.engine import Engine
from durably.records import Run, RunStatus

F = TypeVar("F", bound=Callable[..., Any])
STATUSES = ", ".join(s.value for s in RunStatus)


def _statuses(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> list[str]:
    found = [s.strip() for item in value for s in item.split(",") if s.strip()]
    for status in found:
        if status not in {s.value for s in RunStatus}:
            raise click.BadParameter(f"unknown status {status!r}; the statuses are: {STATUSES}")
    return found


def moment(_ctx: click.Context | None, _param: click.Parameter | None, value: str | None) -> Any:
    """``1h`` (that long ago) or an ISO 8601 time (naive: local time) as a datetime."""
    if value is None:
        return None
    try:
        return datetime.now().astimezone() - timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value).astimezone()
    except (ValueError, OverflowError):  # OverflowError: a time at the edge of year 1 or 9999
        raise click.BadParameter(
            f"{value!r} is neither a duration ago (1h, 30m, 7d) nor an ISO 8601 time"
        ) from None


def seconds(_ctx: click.Context | None, _param: click.Parameter | None, value: str | None) -> Any:
    """A ``--timeout``: a positive, finite number of seconds (``nan`` waited for ever)."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise click.BadParameter(f"must be a positive number of seconds, not {value!r}")
    return number


def run_filters(f: F) -> F:
    """The options that select runs, passed on as the keyword arguments of ``list_runs``."""
    options = [
        click.option("--workflow", "workflows", multiple=True, metavar="PATTERN",
                     help="A workflow name or pattern ('billing.*'); repeatable."),
        click.option("--status", "statuses", multiple=True, callback=_statuses,
                     metavar="STATUS[,STATUS]", help=f"Only these statuses ({STATUSES})."),
        click.option("--queue", help="Only runs of this queue."),
        click.option("--since", callback=moment, metavar="AGO|TIME",
                     help="Created at or after: a duration ago (1h) or an ISO 8601 time."),
        click.option("--until", callback=moment, metavar="AGO|TIME",
                     help="Created before: a duration ago or an ISO 8601 time."),
        click.option("--parent", metavar="RUN_ID", help="Only children of this run."),
        click.option("--key", metavar="KEY", help="The run started with this idempotency key."),
    ]  # fmt: skip
    for option in reversed(options):
        f = option(f)
    return f


def selection(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The filter options of a command, as ``list_runs``/``count_runs`` keywords."""
    return {
        "workflow": kwargs.pop("workflows") or None,
        "status": kwargs.pop("statuses") or None,
        "queue": kwargs.pop("queue"),
        "since": kwargs.pop("since"),
        "until": kwargs.pop("until"),
        "parent": kwargs.pop("parent"),
        "key": kwargs.pop("key"),
    }


def every_run(engine: Engine, where: dict[str, Any], batch: int) -> list[Run]:
    """Every run that matches, read page by page before any is changed."""
    runs: list[Run] = []
    cursor = None
    while True:
        page = engine.list_runs(**where, limit=batch, cursor=cursor)
        runs += page
        if page.cursor is None:
            return runs
        cursor = page.cursor
