"""The ``durably`` command line (``python -m durably`` is the same).

Commands read and change runs from the database alone, without importing any
workflow module; only ``worker`` imports the app. Errors end as one line on stderr
and an exit code that says what went wrong (:mod:`durably.cli.output`; docs/cli.md).
"""

from __future__ import annotations

import os
import sys

import click

from durably import __version__
from durably.cli import admin, bulk, dashboard, messages, replay, runs, schedules
from durably.cli import worker as working
from durably.cli.config import ConfigError
from durably.cli.output import INTERNAL, NOT_FOUND, REFUSED, STORE, USAGE, Failure, printable
from durably.cli.session import common
from durably.cli.worker import load_engine
from durably.errors import (
    DurablyError,
    IdempotencyConflict,
    InvalidRunState,
    NoWorker,
    RunNotFound,
    ScheduleNotFound,
    SerializationError,
    StoreError,
    WorkflowNotFound,
)

__all__ = ["cli", "load_engine", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="durably")
@common
def cli() -> None:
    """durably: durable workflows for ordinary Python functions.

    Options such as --store and -o go before or after a command's name.
    """


@cli.command()
@click.option(
    "--db",
    type=click.Path(dir_okay=False),
    default=None,
    help="SQLite file to use (default: one in a temporary directory).",
)
@click.option("--keep", is_flag=True, help="Keep the temporary directory to inspect it.")
def demo(db: str | None, keep: bool) -> None:
    """Kill a worker mid-workflow with SIGKILL and watch a fresh one resume it."""
    from durably.cli.demo import showcase  # the demo's workflow registers only when asked for

    sys.exit(0 if showcase(db, keep) else 1)


for command in (bulk.cancel, bulk.retry, bulk.fork):
    runs.runs.add_command(command)
cli.add_command(runs.runs)
cli.add_command(messages.start)
cli.add_command(messages.signal)
cli.add_command(schedules.schedules)
cli.add_command(admin.workflows)
cli.add_command(admin.workers)
cli.add_command(admin.db)
cli.add_command(admin.config)
cli.add_command(working.worker)
cli.add_command(replay.replay_check)
cli.add_command(dashboard.dashboard)

#: What each error of the library means to a shell.
CODES: list[tuple[type[BaseException], int]] = [
    (RunNotFound, NOT_FOUND),
    (ScheduleNotFound, NOT_FOUND),
    (StoreError, STORE),
    (InvalidRunState, REFUSED),
    (IdempotencyConflict, REFUSED),
    (NoWorker, REFUSED),
    (SerializationError, USAGE),
    (WorkflowNotFound, USAGE),
    (ConfigError, USAGE),
    (ValueError, USAGE),
    (TypeError, USAGE),
    (DurablyError, 1),
]


def main(args: list[str] | None = None) -> None:
    """Run the command line; exit with its code, never with a traceback."""
    try:
        code = cli.main(args=args, prog_name="durably", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # `durably`, `durably runs`: the help
        click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
        sys.exit(0)
    except click.UsageError as exc:
        hint = f"\n(see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        _fail(exc.format_message() + hint, USAGE)
    except Failure as exc:
        _fail(exc.format_message(), exc.code)
    except click.ClickException as exc:
        _fail(exc.format_message(), USAGE)
    except click.Abort:
        _fail("aborted", 130)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (`| head`): nothing to say
        sys.exit(0)
    except Exception as exc:
        if os.environ.get("DURABLY_DEBUG"):
            raise
        for kind, code in CODES:
            if isinstance(exc, kind):
                _fail(str(exc), code)
        _fail(
            f"internal error: {type(exc).__name__}: {exc} (DURABLY_DEBUG=1 shows the traceback)",
            INTERNAL,
        )
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {printable(' '.join(message.split()))}", err=True)
    sys.exit(code)
