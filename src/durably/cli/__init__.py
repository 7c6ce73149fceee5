"""The ``durably`` command line: ``durably worker`` and ``durably demo``."""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
import traceback
from types import FrameType
from typing import Any

import click

from durably import __version__
from durably.engine import Engine


def load_engine(spec: str) -> Engine:
    """The Engine named by ``MODULE:ATTRIBUTE``, imported with the current directory on the path.

    Raises:
        click.BadParameter: the spec is malformed, or names no importable Engine.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise click.BadParameter(
            f"{spec!r} is not MODULE:ATTRIBUTE (for example 'myapp.jobs:engine')"
        )
    target: Any = _import(module_name)
    path = module_name
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise click.BadParameter(f"{path!r} has no attribute {part!r}") from None
        path = f"{path}{'.' if path != module_name else ':'}{part}"
    if not isinstance(target, Engine):
        kind = f"{type(target).__module__}.{type(target).__qualname__}"
        raise click.BadParameter(f"{spec!r} is a {kind}, not a durably.Engine")
    return target


def _import(module_name: str) -> Any:
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name + ".").startswith(exc.name + "."):
            message = f"no module named {module_name!r} (looked in {cwd} and sys.path)"
        else:  # the module exists but imports something that does not
            message = f"importing {module_name!r} failed: {exc}{_where(exc)}"
    except Exception as exc:
        message = f"importing {module_name!r} failed: {type(exc).__name__}: {exc}{_where(exc)}"
    raise click.BadParameter(message)


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    return f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""


@click.group()
@click.version_option(__version__, prog_name="durably")
def main() -> None:
    """durably: durable workflows for ordinary Python functions."""


@main.command()
@click.option(
    "--app",
    "engine",
    required=True,
    metavar="MODULE:ATTRIBUTE",
    callback=lambda _ctx, _param, value: load_engine(value),
    help="The Engine to run, as MODULE:ATTRIBUTE (e.g. myapp.jobs:engine).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="Threads for sync workflows (default: the engine's own `workers`).",
)
@click.option(
    "--queue",
    "queues",
    multiple=True,
    help="Execute only runs of this queue (repeatable; default: every queue).",
)
@click.option(
    "--workflows",
    "patterns",
    multiple=True,
    metavar="PATTERN",
    help="Execute only workflows whose name matches (e.g. 'billing.*'; repeatable).",
)
def worker(
    engine: Engine, concurrency: int | None, queues: tuple[str, ...], patterns: tuple[str, ...]
) -> None:
    """Execute runs of the app's workflows until SIGTERM or SIGINT.

    SIGTERM drains: no new claims, running steps get the engine's shutdown grace,
    then unfinished runs are released so other workers continue them at once.
    """
    # Read when the executor is launched.
    if concurrency is not None:
        engine.workers = concurrency
    if queues:
        engine.queues = list(queues)
    if patterns:
        engine.workflows = list(patterns)
    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    engine.launch()
    try:
        names = engine.executing_workflows()
        workflows = ", ".join(sorted(names)) if names else "none (this worker will execute nothing)"
        served = ", ".join(engine.queues) if engine.queues else "all"
        click.echo(
            f"durably worker pid {os.getpid()}: store {engine.store!r}, "
            f"concurrency {engine.workers}, queues: {served}, workflows: {workflows}"
        )
        stop.wait()
        click.echo(
            f"durably worker: {received[0]} received; finishing running steps "
            f"(up to {engine.shutdown_grace:g}s), unfinished runs are released for other workers"
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        engine.close()
    click.echo("durably worker: stopped")


@main.command()
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


if __name__ == "__main__":
    main()
