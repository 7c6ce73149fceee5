"""``durably replay-check``: replay recorded runs against the app's current code."""

from __future__ import annotations

from typing import Any

import click

from durably.cli.output import FAILED, USAGE, Failure, note
from durably.cli.session import Session, common, with_session
from durably.cli.worker import app_engine
from durably.testing.replay import replay_check as check


@click.command("replay-check")
@common
@click.option(
    "--workflows",
    "patterns",
    multiple=True,
    metavar="PATTERN",
    help="Check only runs of workflows whose name matches (repeatable; default: all).",
)
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="How many of the newest runs to replay.",
)
@with_session
def replay_check(s: Session, patterns: tuple[str, ...], sample: int) -> None:
    """Replay the newest runs' journals against the workflows of --app, without running
    any step; exit 1 if the code now calls something other than what a run recorded.

    Run it in CI before a deploy, on a copy of production's database or production
    itself (it only reads).
    """
    apps = s.config.get("app", ())
    if not apps:
        raise Failure("replay-check needs --app: the module(s) of the workflows to check", USAGE)
    engine = app_engine(s.config)
    if engine is None or s.config.given("store"):  # a store given wins: a copy, say
        engine = s.engine()
    report = check(engine, patterns or None, sample)
    note(f"{report.checked} run(s) replayed, {len(report.divergences)} divergence(s)")
    for workflow, count in sorted(report.unknown.items()):
        note(f"{count} run(s) of {workflow!r} not checked: --app does not define it")
    if s.output.format == "json":
        s.output.write_json(
            {
                "checked": report.checked,
                "divergences": report.divergences,
                "unknown": report.unknown,
            }
        )
    else:
        columns: list[tuple[str, Any]] = [
            ("RUN", lambda d: d.run_id),
            ("WORKFLOW", lambda d: d.workflow),
            ("POSITION", lambda d: d.position),
            ("RECORDED", lambda d: d.recorded),
            ("NOW CALLS", lambda d: d.current),
            ("AT", lambda d: d.call_site),
        ]
        s.output.records(report.divergences, columns, ids=lambda d: d.run_id)
    if not report.ok:
        raise Failure(f"{len(report.divergences)} run(s) would not replay on this code", FAILED)
