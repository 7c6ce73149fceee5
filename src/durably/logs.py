"""Logs with the run's context, through the standard :mod:`logging` module.

durably's own loggers are named under ``durably.`` (``durably.worker``,
``durably.engine``, ``durably.store``, ...). Inside a run or a step, any record
(the application's too) can carry the run's context as record attributes:
``run_id``, ``workflow``, ``step``, ``attempt`` (the step's attempt inside a step,
the run's execution otherwise), ``worker_id``, and ``trace_id`` / ``span_id`` when
tracing is on (:mod:`durably.contrib.otel`). Attach :class:`RunContextFilter` to a
handler to get them; :class:`JsonFormatter` prints one JSON object per line with
them (``durably worker --log-format json``).

Workflow code is replayed after every suspension; a line it logs through
:func:`get_logger` is written once, when the code first runs, not again on replay.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

from durably import current

#: The record attributes :class:`RunContextFilter` sets (None outside runs).
FIELDS = ("run_id", "workflow", "step", "attempt", "worker_id", "trace_id", "span_id")
#: Set by tracing while it is on: the current span's (trace id, span id) in hex.
trace_ids: Callable[[], tuple[str, str] | None] | None = None
_installed: logging.Handler | None = None  # the handler configure() added


def run_context() -> dict[str, Any]:
    """The context of the run executing here (an empty dict outside runs)."""
    ctx = current.owning_run.get()
    if ctx is None:
        return {}
    attempt = current.step_attempt.get()
    fields: dict[str, Any] = {
        "run_id": ctx.run_id,
        "workflow": ctx.workflow_name,
        "step": attempt.step if attempt is not None else ctx.current_step,
        "attempt": attempt.number if attempt is not None else ctx.run.attempts,
        "worker_id": ctx.lease.owner,
    }
    ids = trace_ids() if trace_ids is not None else None
    if ids is not None:
        fields["trace_id"], fields["span_id"] = ids
    return fields


class RunContextFilter(logging.Filter):
    """Adds the run's context (:data:`FIELDS`) to every record it sees; passes them all.

    Attach it to a handler (``handler.addFilter(RunContextFilter())``) so records of
    every logger reaching that handler get the attributes, ``None`` outside runs (so
    a format string may name them). Attributes a record has already are kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        fields = run_context()
        for name in FIELDS:
            if not hasattr(record, name):
                setattr(record, name, fields.get(name))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, the
    run's context (those set), and the traceback as ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = run_context()
        for name in FIELDS:
            value = getattr(record, name, None)
            value = fields.get(name) if value is None else value
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, default=str)


class ReplaySafeLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger for workflow code: drops what it logs while the run replays (the line
    was written when the code first ran) and adds the run's context to each record."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        ctx = current.workflow_run.get()
        if ctx is not None and ctx.replaying:
            return
        super().log(level, msg, *args, **kwargs)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        extra = {**run_context(), **(kwargs.get("extra") or {})}
        kwargs["extra"] = extra
        return msg, kwargs


def get_logger(name: str) -> ReplaySafeLogger:
    """A logger for workflow code: each line once, not once per replay, with the run's
    context as record attributes (see :data:`FIELDS`)."""
    return ReplaySafeLogger(logging.getLogger(name), {})


def configure(level: str | int = "INFO", fmt: str = "text") -> logging.Handler:
    """Send records of every logger at ``level`` and above to stderr, as text or as JSON
    lines (``fmt="json"``), with the run's context: what ``durably worker`` does."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', not {fmt!r}")
    handler = logging.StreamHandler()
    handler.addFilter(RunContextFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    global _installed
    root = logging.getLogger()
    if _installed is not None:  # configured again (a second command in one process)
        root.removeHandler(_installed)
    root.addHandler(handler)
    _installed = handler
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler


__all__ = [
    "FIELDS",
    "JsonFormatter",
    "ReplaySafeLogger",
    "RunContextFilter",
    "configure",
    "get_logger",
    "run_context",
]
