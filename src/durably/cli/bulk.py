"""``durably runs cancel|retry|fork``: changing runs, one by one or ``--where`` in bulk.

A bulk change counts the matching runs first and changes nothing without ``--yes``
(``--dry-run`` shows what would be done). It goes through the runs a page at a
time, newest first, and ends with how many ended in each outcome.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import click

from durably.cli.filters import run_filters, selection
from durably.cli.output import NOT_FOUND, REFUSED, USAGE, Failure, note
from durably.cli.session import Session, common, with_session
from durably.errors import InvalidRunState, RunNotFound

LIVE = ["pending", "running", "sleeping", "waiting"]


def _bulk(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.argument("run_ids", nargs=-1, metavar="[RUN_ID]..."),
        click.option("--where", is_flag=True, help="Every run the filters below select."),
        run_filters,
        click.option("--yes", is_flag=True, help="With --where: do it (no prompt)."),
        click.option("--dry-run", is_flag=True, help="Count, change nothing."),
        click.option("--batch", type=click.IntRange(1, 10_000), default=500, hidden=True),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.command()
@common
@_bulk
@click.option("--reason", default=None, help="Why: recorded, and raised in the run.")
@with_session
def cancel(s: Session, reason: str | None, **options: Any) -> None:
    """Cancel runs (and their children): by id, or --where (default: the live ones).

    Compensations run before each ends as cancelled.
    """

    def one(run_id: str) -> str:
        if s.engine().get_run(run_id).status.value == "cancelled":
            return "already cancelled"
        s.engine().cancel(run_id, reason)
        return "cancel requested"

    _apply(s, "cancel", one, LIVE, options)


@click.command()
@common
@_bulk
@with_session
def retry(s: Session, **options: Any) -> None:
    """Run failed runs again: by id, or --where (default: the failed ones).

    Recorded steps replay; the failed steps run anew.
    """

    def one(run_id: str) -> str:
        s.engine().retry(run_id)
        return "retried"

    _apply(s, "retry", one, ["failed"], options)


def _apply(
    s: Session, verb: str, one: Callable[[str], str], default: list[str], options: dict[str, Any]
) -> None:
    run_ids, where = options.pop("run_ids"), options.pop("where")
    yes, dry_run, batch = options.pop("yes"), options.pop("dry_run"), options.pop("batch")
    filters = selection(options)
    given = any(v for v in filters.values())
    if run_ids and (where or given):
        raise Failure(f"give run ids or --where with filters, not both, to {verb}", USAGE)
    if not run_ids and not where:
        raise Failure(f"name the runs to {verb}: run ids, or --where with filters", USAGE)
    if run_ids:
        _by_ids(s, verb, one, run_ids, dry_run)
        return
    outcomes: Counter[str] = Counter()
    filters["status"] = filters["status"] or default
    engine = s.engine()
    matched = engine.count_runs(**filters)
    note(f"{matched} run(s) match")
    if not (yes or dry_run) and matched:
        raise Failure(f"{matched} run(s) would be changed: add --yes to {verb} them "
                      "(or --dry-run)", USAGE)  # fmt: skip
    if dry_run:
        outcomes[f"would {verb}"] = matched
    else:
        done, cursor = 0, None
        while True:
            page = engine.list_runs(**filters, limit=batch, cursor=cursor)
            for run in page:
                outcomes[_outcome(one, run.run_id)] += 1
            done += len(page)
            if page.cursor is None:
                break
            note(f"{done} of about {matched} done")
            cursor = page.cursor
        matched = done  # what still matched when acted on (runs end meanwhile)
    _summary(s, matched, outcomes, dry_run=dry_run)


def _by_ids(
    s: Session, verb: str, one: Callable[[str], str], run_ids: list[str], dry_run: bool
) -> None:
    if dry_run:  # only say which runs exist: nothing is changed

        def one(run_id: str) -> str:
            s.engine().get_run(run_id)
            return f"would {verb}"

    outcomes: Counter[str] = Counter(_outcome(one, run_id) for run_id in run_ids)
    _summary(s, len(run_ids), outcomes, dry_run=dry_run)
    if outcomes["not found"]:
        raise SystemExit(NOT_FOUND)
    if any(k.startswith("refused") for k in outcomes):
        raise SystemExit(REFUSED)


def _outcome(one: Callable[[str], str], run_id: str) -> str:
    try:
        return one(run_id)
    except RunNotFound:
        note(f"run {run_id}: not found")
        return "not found"
    except InvalidRunState as exc:
        note(f"run {run_id}: {exc}")
        return "refused"


def _summary(s: Session, matched: int, outcomes: Counter[str], *, dry_run: bool) -> None:
    if s.output.format in ("json", "jsonl"):
        s.output.write_json({"matched": matched, "dry_run": dry_run, "outcomes": outcomes})
        return
    if dry_run:
        note("dry run: nothing was changed")
    rows = [[outcome, count] for outcome, count in sorted(outcomes.items())]
    s.output.table(["OUTCOME", "RUNS"], rows)


@click.command()
@common
@click.argument("run_id")
@click.option("--from-step", type=int, required=True, metavar="N",
              help="Positions before N replay; N and after execute again.")  # fmt: skip
@with_session
def fork(s: Session, run_id: str, from_step: int) -> None:
    """Start a new run of the same workflow and input, replaying the original's journal
    up to position N (see `durably runs steps ID`); print the new run's id."""
    new = s.engine().fork(run_id, from_step)
    if s.output.format in ("json", "jsonl"):
        s.output.write_json({"run_id": new, "forked_from": run_id, "from_step": from_step})
    else:
        s.output.out.write(new + "\n")
