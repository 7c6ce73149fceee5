"""``durably worker``: execute runs until SIGTERM or SIGINT."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading
import traceback
from types import FrameType
from typing import Any

import click

from durably import logs
from durably.cli.config import Config
from durably.cli.output import USAGE, Failure
from durably.cli.session import Session, common, with_session
from durably.engine import Engine
from durably.retention import Retention
from durably.stores.base import redact


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
    target: Any = import_module(module_name)
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


def import_module(module_name: str) -> Any:
    """Import a module of the app (its workflows register), the current directory first."""
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


def app_engine(config: Config) -> Engine | None:
    """Import the ``--app`` modules; the engine they name (``MODULE:ENGINE``) or, with
    no store configured, the one engine they define; None if neither."""
    apps = config.get("app", ())
    try:
        engines = [load_engine(a) for a in apps if ":" in a]
        modules = [import_module(a) for a in apps if ":" not in a]
    except click.BadParameter as exc:
        exc.param_hint = "'--app'"
        raise
    if len(engines) > 1:
        raise Failure(f"--app names {len(engines)} engines; name one", USAGE)
    if not engines and not config.given("store"):
        defined = _defined(modules)
        if len(defined) > 1:
            names = ", ".join(defined)
            raise Failure(
                f"the --app modules define {len(defined)} engines ({names}): name the one "
                "to use (--app MODULE:ENGINE) or give --store",
                USAGE,
            )
        engines = list(defined.values())
    return engines[0] if engines else None


#: The configuration applied over the settings of an app's own engine: key -> attribute.
SETTINGS = {
    "concurrency": "workers",
    "queues": "queues",
    "workflows": "workflows",
    "worker_id": "worker_id",
    "lease": "lease",
    "poll_interval": "poll_interval",
    "shutdown_grace": "shutdown_grace",
    "max_recoveries": "max_recoveries",
}


def worker_engine(config: Config) -> Engine:
    """The engine ``durably worker`` runs: the app's own (``module:engine``, or the one
    engine its modules define when no store is configured) with the configuration's
    settings applied, or one made from the configuration, after every ``--app`` module
    is imported."""
    apps = config.get("app", ())
    if not apps:
        raise Failure(
            "durably worker needs --app: the module(s) that define your workflows, or "
            "MODULE:ENGINE (also DURABLY_APP, or app = [...] in [tool.durably])",
            USAGE,
        )
    engine = app_engine(config)
    retention = config.retention()
    if engine is not None:
        for key in SETTINGS:
            if config.given(key):
                value = _value(config, key)
                if key == "lease" and value < 1:
                    raise Failure(f"lease must be at least 1 second, not {value:g}s", USAGE)
                setattr(engine, SETTINGS[key], value)
        if config.given("store"):
            logging.getLogger("durably.worker").warning(
                "--app names an engine: it runs on its own store %r; the store configured "
                "(%s) is not used",
                engine.store,
                redact(config.get("store")),
            )
        if retention is not None:
            engine.retention = Retention(**retention)
        return engine
    return Engine(
        config.get("store"),
        workers=config.get("concurrency", 64),
        lease=config.get("lease", 30.0),
        poll_interval=config.get("poll_interval", 1.0),
        shutdown_grace=config.get("shutdown_grace", 10.0),
        max_recoveries=config.get("max_recoveries", 10),
        queues=_value(config, "queues"),
        workflows=_value(config, "workflows"),
        worker_id=config.get("worker_id"),
        retention=None if retention is None else Retention(**retention),
    )


def _defined(modules: list[Any]) -> dict[str, Engine]:
    """The engines the modules define at their top level, by ``module:name`` (an engine
    defined under two names once)."""
    found: dict[str, Engine] = {}
    for module in modules:
        for name, value in vars(module).items():
            if isinstance(value, Engine) and all(value is not e for e in found.values()):
                found[f"{module.__name__}:{name}"] = value
    return found


def _value(config: Config, key: str) -> Any:
    value = config.get(key)
    return list(value) if isinstance(value, tuple) else value


@click.command()
@common
@click.option("--worker-id", help="This worker's name in `durably workers` (DURABLY_WORKER_ID).")
@click.option("--log-level", help="DEBUG, INFO (default), WARNING, ERROR (DURABLY_LOG_LEVEL).")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="text (default), or json: one object per line with the run's context.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=1, max=65535),
    default=None,
    help="Serve Prometheus metrics on this port (needs durably[prometheus]).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="Threads for sync workflows (default: the engine's own, 64).",
)
@click.option(
    "--queue",
    "queues",
    multiple=True,
    help="Execute only runs of this queue (repeatable; default: every queue).",
)
@click.option(
    "--workflows",
    multiple=True,
    metavar="PATTERN",
    help="Execute only workflows whose name matches (e.g. 'billing.*'; repeatable).",
)
@with_session
def worker(s: Session, **flags: Any) -> None:  # fmt: skip
    """Execute runs of the app's workflows until SIGTERM or SIGINT.

    SIGTERM drains: no new claims, running steps get the engine's shutdown grace,
    then unfinished runs are released so other workers continue them at once.
    """
    config = s.reload(flags)
    log_format = config.get("log_format", "text")
    logs.configure(config.get("log_level", "INFO"), log_format)
    # With JSON logs every line this process prints is JSON: the banner's facts are in
    # the INFO lines (started, draining, stopped) and stdout stays empty.
    say = click.echo if log_format == "text" else lambda line: None
    engine = worker_engine(config)
    port = config.get("metrics_port")
    metrics = None if port is None else _serve_metrics(engine, port)
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
        owner = engine.executor.owner if engine.executor else "?"
        say(
            f"durably worker pid {os.getpid()} ({owner}): store {engine.store!r}, "
            f"concurrency {engine.workers}, queues: {served}, workflows: {workflows}"
        )
        stop.wait()
        say(
            f"durably worker: {received[0]} received; finishing running steps "
            f"(up to {engine.shutdown_grace:g}s), unfinished runs are released for other workers"
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if metrics is not None:  # first: it gives its gauges' lease back through the store
            metrics.close()
        engine.close()
    say("durably worker: stopped")


def _serve_metrics(engine: Engine, port: int) -> Any:
    """Serve the engine's Prometheus metrics on ``port``; a clear failure without the extra."""
    try:
        from durably.contrib import prometheus
    except ImportError as exc:
        raise Failure(str(exc), USAGE) from None
    try:
        return prometheus.serve(engine, port)
    except OSError as exc:
        raise Failure(f"cannot serve metrics on port {port}: {exc}", USAGE) from None
