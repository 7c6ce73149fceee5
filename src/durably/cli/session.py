"""What every command shares: the options it accepts anywhere, the configuration they
make, the output, and a client engine on the store (opened once, closed at exit).

The store is opened from its URL alone: no workflow module is imported to read,
cancel, retry, fork, signal or start runs (``--app`` matters to ``worker`` only).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from durably.cli.config import Config, load
from durably.cli.output import FORMATS, STORE, Failure, Output
from durably.engine import Engine
from durably.stores import open_store, sqlite_file
from durably.stores.base import redact

F = TypeVar("F", bound=Callable[..., Any])
_FLAGS = "durably.flags"


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value not in (None, (), False):
        ctx.meta.setdefault(_FLAGS, {})[param.name] = value
    return value


def common(f: F) -> F:
    """The options every command takes, before or after its name (the later wins)."""
    options = [
        click.option(
            "--store",
            metavar="URL",
            help="The database: a SQLite path or postgresql://... (env DURABLY_STORE).",
        ),
        click.option(
            "--app",
            multiple=True,
            metavar="MODULE[:ENGINE]",
            help="Modules to import (the worker's workflows), or the Engine to run.",
        ),
        click.option(
            "-o",
            "--output",
            type=click.Choice(FORMATS),
            help="table (default), json (one document), jsonl (one per line), ids.",
        ),
        click.option("--no-color", is_flag=True, help="No colours (also NO_COLOR=1)."),
        click.option(
            "--config",
            "config_file",
            metavar="FILE",
            help="The configuration file (default: durably.toml or pyproject.toml, "
            "nearest first; env DURABLY_CONFIG).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    for param in getattr(f, "__click_params__", [])[-len(options) :]:
        param.expose_value = False
        param.callback = _remember
    return f


class Session:
    """One command's configuration, output and engine."""

    def __init__(self, ctx: click.Context) -> None:
        flags = dict(ctx.meta.get(_FLAGS, {}))
        config_file = flags.pop("config_file", None) or os.environ.get("DURABLY_CONFIG")
        color = not flags.pop("no_color", False)
        self._flags, self._file = flags, config_file
        self.config: Config = load(flags, config_file)
        self.output = Output(self.config.get("output", "table"), color=color)
        self._engine: Engine | None = None
        ctx.call_on_close(self.close)

    def reload(self, flags: dict[str, Any]) -> Config:
        """The configuration with a command's own flags too (``worker --worker-id``)."""
        self.config = load({**self._flags, **flags}, self._file)
        return self.config

    def store_spec(self) -> str:
        return str(self.config.get("store", "durably.db"))

    def engine(self, *, create: bool = False) -> Engine:
        """A client engine on the configured store (it executes nothing).

        Raises:
            Failure: a SQLite file that does not exist, unless ``create``.
        """
        if self._engine is None:
            spec = self.store_spec()
            path = sqlite_file(spec)
            if path and path != ":memory:" and not create and not os.path.exists(path):
                raise Failure(
                    f"no database at {path}: give --store URL or set DURABLY_STORE "
                    "(or create one with `durably db migrate`)",
                    STORE,
                )
            if not create and path != ":memory:":
                _made_by_durably(spec)
            self._engine = Engine(spec, execute=False)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None


def _made_by_durably(spec: str) -> None:
    """Refuse a database durably never migrated (a mistyped PostgreSQL schema, another
    program's SQLite file): a command that only reads or changes runs creates none."""
    store = open_store(spec, migrate=False)
    try:
        version = store.schema_version()
    finally:
        store.close()
    if version == 0:
        raise Failure(
            f"no durably database at {redact(spec)}: check the URL's schema or path, or "
            "create one with `durably db migrate`",
            STORE,
        )


def session() -> Session:
    """The current command's session (made on first use)."""
    ctx = click.get_current_context()
    root = ctx.find_root()
    found = root.meta.get("durably.session")
    if found is None:
        found = root.meta["durably.session"] = Session(root)
    return found


def with_session(f: Callable[..., Any]) -> Callable[..., Any]:
    """A command that takes the session as its first argument."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return f(session(), *args, **kwargs)

    return wrapper
