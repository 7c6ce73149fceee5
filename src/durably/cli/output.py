"""What the commands print: tables for people, strict JSON for scripts, and exit codes.

``-o table`` goes through rich (no ANSI codes unless stdout is a terminal, none at
all with ``--no-color`` or ``NO_COLOR``); ``json`` is one document, ``jsonl`` one
object per line and ``ids`` one run id per line, all written to stdout without
rich. Messages, cursors and progress go to stderr.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

# Exit codes (docs/cli.md). A run's end, then what went wrong.
OK = 0
FAILED = 1  # the run failed
CANCELLED = 2  # the run was cancelled
USAGE = 3  # bad input: an option, an argument, a payload, a configuration
NOT_FOUND = 4  # no such run
TIMED_OUT = 5  # the wait timed out, or the run did (a workflow timeout)
STORE = 6  # the database cannot be reached or failed
REFUSED = 7  # the run is not in a state that allows it (retry a running run ...)
NOT_ENDED = 8  # the run has not ended (result without --wait)
INTERNAL = 70  # a bug in durably: please report it

FORMATS = ("table", "json", "jsonl", "ids")
STATUS_STYLES = {
    "completed": "green",
    "failed": "red",
    "cancelled": "yellow",
    "running": "blue",
    "sleeping": "cyan",
    "waiting": "cyan",
    "pending": "dim",
}


class Failure(click.ClickException):
    """A command ends with one line on stderr and a meaningful exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def plain(value: Any) -> Any:
    """``value`` as JSON values: records as objects, times as ISO 8601, enums as values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def when(value: datetime | float | None, precise: bool = False) -> str:
    """A time for a table: UTC, to the second (or the millisecond)."""
    if value is None:
        return ""
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, UTC)
    text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return text[:-3] if precise else text[:-7]


def took(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    seconds = (end - start).total_seconds()
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"


class Output:
    """Where a command's results go, in the format asked for."""

    def __init__(self, fmt: str, color: bool = True, out: IO[str] | None = None) -> None:
        self.format = fmt
        self.color = color and not os.environ.get("NO_COLOR")
        self.out = out or sys.stdout
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            tty = self.out.isatty()
            width = None if tty else int(os.environ.get("COLUMNS", "0") or 0) or 200
            self._console = Console(
                file=self.out,
                no_color=not self.color,
                color_system="auto" if tty and self.color else None,
                width=width,
                highlight=False,
                emoji=False,
                markup=False,
            )
        return self._console

    def write_json(self, value: Any) -> None:
        self.out.write(json.dumps(plain(value), ensure_ascii=False) + "\n")
        self.out.flush()

    def records(
        self,
        rows: Sequence[Any],
        columns: Sequence[tuple[str, Callable[[Any], Any]]],
        *,
        ids: Callable[[Any], str] | None = None,
        title: str | None = None,
    ) -> None:
        """A list of records: a table of ``columns``, a JSON array, JSON lines, or ids."""
        if self.format == "json":
            self.write_json(list(rows))
        elif self.format == "jsonl":
            for row in rows:
                self.write_json(row)
        elif self.format == "ids":
            if ids is None:
                raise Failure("-o ids lists run ids: this command lists none", USAGE)
            for row in rows:
                if run_id := ids(row):  # a schedule that never ran has none
                    self.out.write(run_id + "\n")
        else:
            self.table(
                [name for name, _ in columns],
                [[get(row) for _, get in columns] for row in rows],
                title=title,
            )

    def table(
        self, headers: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None
    ) -> None:
        from rich import box
        from rich.table import Table

        table = Table(
            title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False, show_edge=False
        )
        for header in headers:
            table.add_column(header, overflow="fold")
        for row in rows:
            table.add_row(*(self.styled(v) for v in row))
        self.console.print(table)

    def styled(self, value: Any) -> Any:
        from rich.text import Text

        text = "" if value is None else printable(str(value))
        return Text(text, style=STATUS_STYLES.get(text, ""))

    def fields(self, pairs: Sequence[tuple[str, Any]]) -> None:
        """A record as ``name  value`` lines (the header of ``runs show``)."""
        from rich.table import Table

        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column(overflow="fold")
        for name, value in pairs:
            if value not in (None, ""):
                grid.add_row(name, self.styled(value))
        self.console.print(grid)

    def text(self, text: str, style: str = "") -> None:
        self.console.print(printable(text), style=style or None, soft_wrap=True)


#: Control characters (but tab and newline) as escapes: a name or message that holds
#: ESC sequences must not drive the reader's terminal.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0)) if c not in (9, 10)}


def printable(text: str) -> str:
    """``text`` with its control characters shown as ``\\xNN``."""
    return text.translate(_CONTROLS)


def note(message: str) -> None:
    """A line for people on stderr (never mixed into the results on stdout)."""
    click.echo(printable(message), err=True)
