"""``durably start`` and ``durably signal``: writing to runs by name, without their code."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from durably.cli.filters import seconds
from durably.cli.output import USAGE, Failure, note
from durably.cli.runs import result
from durably.cli.session import Session, common, with_session
from durably.durations import parse_duration


def payload(text: str | None, what: str) -> Any:
    """A JSON value given inline, as ``@file``, or as ``-`` (stdin)."""
    if text is None:
        return None
    source = what
    if text == "-":
        text, source = sys.stdin.read(), f"{what} from stdin"
    elif text.startswith("@"):
        path = text[1:]
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise Failure(f"cannot read {what} file {path}: {exc.strerror}", USAGE) from None
        source = f"{what} in {path}"
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise Failure(f"{source} is not valid JSON: {exc}", USAGE) from None


@click.command()
@common
@click.argument("run_id")
@click.argument("name")
@click.argument("value", required=False, metavar="[JSON | @FILE | -]")
@click.option("--key", "idempotency_key", help="Sends with the same key are one signal.")
@with_session
def signal(s: Session, run_id: str, name: str, value: str | None, idempotency_key: str) -> None:
    """Send the run the signal NAME with a JSON payload (default: null)."""
    data = payload(value, "the signal's payload")
    s.engine().send_signal(run_id, name, data, idempotency_key=idempotency_key)
    if s.output.format in ("json", "jsonl"):
        s.output.write_json({"run_id": run_id, "signal": name, "sent": True})
    else:
        s.output.out.write(f"sent signal {name!r} to run {run_id}\n")


@click.command()
@common
@click.argument("workflow")
@click.argument("arguments", required=False, metavar="[JSON | @FILE | -]")
@click.option("--run-id", help="The new run's id (default: a random, time-ordered one).")
@click.option("--key", "idempotency_key", help="Starts with the same key are one run.")
@click.option("--queue", help="The queue to run it in (default: 'default').")
@click.option("--priority", type=int, help="Higher runs first within its queue.")
@click.option("--partition-key", help="The queue's partition it counts against.")
@click.option("--delay", metavar="DURATION", help="Start no sooner than this (30s, 1h).")
@click.option("--wait", is_flag=True, help="Wait for its result; exit as `runs result`.")
@click.option("--timeout", callback=seconds, default=None, metavar="SECONDS",
              help="With --wait: give up after this long (exit 5).")  # fmt: skip
@click.pass_context
@with_session
def start(
    s: Session,
    ctx: click.Context,
    workflow: str,
    arguments: str | None,
    wait: bool,
    timeout: float | None,
    delay: str | None,
    **options: Any,
) -> None:
    """Start a run of WORKFLOW (by name: its code need not be importable here).

    ARGUMENTS is JSON: an array is the positional arguments, an object the keyword
    arguments, any other value the one argument (pass one dict as [{...}]).
    """
    given = payload(arguments, "the arguments")
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    if isinstance(given, list):
        args = given
    elif isinstance(given, dict):
        kwargs = given
    elif arguments is not None:
        args = [given]
    chosen = {k: v for k, v in options.items() if v is not None}
    if delay is not None:
        try:
            chosen["delay"] = parse_duration(delay)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--delay") from None
    engine = s.engine(create=True)
    handle = engine.with_options(**chosen).start_workflow(workflow, *args, **kwargs)
    if not wait:
        if s.output.format in ("json", "jsonl"):
            s.output.write_json({"run_id": handle.run_id, "workflow": workflow})
        else:
            s.output.out.write(handle.run_id + "\n")
        return
    note(f"started run {handle.run_id}")
    ctx.invoke(result, run_id=handle.run_id, wait=True, timeout=timeout)
