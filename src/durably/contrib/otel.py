"""OpenTelemetry tracing of an engine's runs: ``instrument(engine)`` (``durably[otel]``).

Only ``opentelemetry-api`` is needed; the SDK and its exporters are the application's.
Each run gets a ``start <workflow>`` span (PRODUCER) where it is started, whose trace
context is stored with the run; a ``run <workflow>`` span (CONSUMER) for each of its
executions, a child of that context and current while the workflow's code runs; a
``step <name>`` span for each attempt of a step's body (none for a replayed step); and
``signal <name>`` spans where signals are sent. An execution that replays a journal
long after its run was created starts a new trace, linked to the stored context.
See docs/tracing.md.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from contextvars import Token
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - exercised with the module hidden
    raise ImportError(
        "durably.contrib.otel needs OpenTelemetry: pip install 'durably[otel]'"
    ) from exc

from durably import hooks
from durably.durations import parse_duration
from durably.records import RunStatus

if TYPE_CHECKING:
    from durably.engine import Engine

__all__ = ["Tracing", "current_trace_ids", "instrument"]

Attributes = dict[str, str | int | bool]
TraceIds = Callable[[], tuple[str, str] | None]


def instrument(
    engine: Engine,
    tracer_provider: trace.TracerProvider | None = None,
    *,
    new_trace_after: str | float | timedelta = "5m",
) -> Tracing:
    """Trace ``engine``'s runs; returns the :class:`Tracing`, whose ``close()`` stops it.

    Instrument an engine before launching it, or the runs it claims at once are missed;
    once (:class:`ValueError` while its first ``Tracing`` is open).

    Args:
        engine: the engine whose hooks to subscribe to (one that starts runs, executes
            them, or both).
        tracer_provider: where spans go; the global one when ``None``.
        new_trace_after: an execution that replays a journal more than this long after
            its run was created starts a new trace, linked to the run's stored context.
    """
    return Tracing(engine, tracer_provider, parse_duration(new_trace_after))


def current_trace_ids() -> tuple[str, str] | None:
    """The current span's (trace id, span id) in hex, or None outside a valid span."""
    found = trace.get_current_span().get_span_context()
    if not found.is_valid:
        return None
    return format(found.trace_id, "032x"), format(found.span_id, "016x")


class Tracing(hooks.Subscriber):
    """The subscriber that makes the spans, subscribed once made (see :func:`instrument`)."""

    def __init__(
        self,
        engine: Engine,
        tracer_provider: trace.TracerProvider | None,
        new_trace_after: float,
    ) -> None:
        from durably import __version__

        with _traced_lock:
            if engine in _traced:  # each execution would get two run spans, two per step
                raise ValueError("this engine is traced already: close() its Tracing first")
            _traced.add(engine)
        self.engine = engine
        self.tracer = trace.get_tracer("durably", __version__, tracer_provider)
        self.new_trace_after = new_trace_after
        # The open execution spans of each run, oldest first: an execution's end may be
        # told after the run's next execution began (another thread claimed it).
        self._open: dict[str, deque[Span]] = {}
        self._lock = threading.Lock()
        self._unsubscribe: Callable[[], None] | None = engine.hooks.subscribe(self)
        _correlate(+1)  # durably.logs gets the current trace ids

    def close(self) -> None:
        """Unsubscribe, restore the log correlation, and end the spans still open."""
        if self._unsubscribe is None:
            return
        self._unsubscribe()
        self._unsubscribe = None
        with _traced_lock:
            _traced.discard(self.engine)
        _correlate(-1)
        with self._lock:
            spans = [span for segment in self._open.values() for span in segment]
            self._open.clear()
        for span in spans:
            span.end()

    # -- where runs start ----------------------------------------------------------
    def run_starting(self, event: hooks.RunStarting) -> str | None:
        parent = otel_context.get_current()  # the caller's, or the parent run's code
        if event.origin == "schedule":
            parent = otel_context.Context()  # a tick has no caller: a trace of its own
        elif event.parent_id is not None and not _has_span(parent):
            parent = self._context_of(event.parent_id) or parent
        attributes: Attributes = {
            "durably.run.id": event.run_id,
            "durably.workflow.name": event.workflow,
            "durably.queue": event.queue,
            "durably.run.origin": event.origin,
        }
        if event.parent_id is not None:
            attributes["durably.parent_run.id"] = event.parent_id
        if event.schedule_id is not None:
            attributes["durably.schedule.id"] = event.schedule_id
        name = f"start {event.workflow}"
        span = self.tracer.start_span(name, parent, SpanKind.PRODUCER, attributes)
        span.end()
        carrier: dict[str, str] = {}
        propagate.inject(carrier, trace.set_span_in_context(span))
        return json.dumps(carrier, separators=(",", ":")) if carrier else None

    def signal_sent(self, event: hooks.SignalSent) -> None:
        attributes = {"durably.run.id": event.run_id, "durably.signal.name": event.name}
        self.tracer.start_span(f"signal {event.name}", None, SpanKind.PRODUCER, attributes).end()

    # -- executions ----------------------------------------------------------------
    def run_executing(self, event: hooks.RunClaimed) -> AbstractContextManager[object]:
        parent = _extract(event.trace)
        cause = trace.get_current_span(parent).get_span_context()
        links: list[Link] = []
        late = (
            event.replaying and self.engine.clock.time() - event.created_at > self.new_trace_after
        )
        if late and cause.is_valid:  # a new trace, joined to its cause by a link
            parent, links = otel_context.Context(), [Link(cause)]
        attributes: Attributes = {
            "durably.run.id": event.run_id,
            "durably.workflow.name": event.workflow,
            "durably.queue": event.queue,
            "durably.worker.id": event.owner,
            "durably.run.attempt": event.attempt,
            "durably.run.replaying": event.replaying,
            "durably.run.recovered": event.recovered,
        }
        if event.parent_id is not None:
            attributes["durably.parent_run.id"] = event.parent_id
        name = f"run {event.workflow}"
        span = self.tracer.start_span(name, parent, SpanKind.CONSUMER, attributes, links)
        with self._lock:
            self._open.setdefault(event.run_id, deque()).append(span)
        return _Current(span, lambda: self._discard(event.run_id, span))

    def step_executing(self, event: hooks.StepStarted) -> AbstractContextManager[object]:
        parent = otel_context.get_current()
        if not trace.get_current_span(parent).get_span_context().is_valid:
            # A thread the run's context did not reach: the run's execution span.
            parent = self._context_of(event.run_id) or parent
        attributes: Attributes = {
            "durably.run.id": event.run_id,
            "durably.workflow.name": event.workflow,
            "durably.step.name": event.step,
            "durably.step.attempt": event.attempt,
            "durably.step.seq": event.seq,
        }
        return _Current(
            self.tracer.start_span(f"step {event.step}", parent, SpanKind.INTERNAL, attributes)
        )

    def step_finished(self, event: hooks.StepFinished) -> None:
        span = self._latest(event.run_id) if event.status == "retrying" else None
        if span is not None:
            attributes: Attributes = {
                "durably.step.name": event.step,
                "durably.step.attempt": event.attempt,
            }
            if event.error is not None:
                attributes["exception.type"] = event.error.type
            span.add_event("retry", attributes)

    # -- how executions end --------------------------------------------------------
    def run_suspended(self, event: hooks.RunSuspended) -> None:
        attributes: Attributes = {"durably.run.status": event.status.value}
        if event.wake_at is not None:
            attributes["durably.wake_at"] = datetime.fromtimestamp(event.wake_at, UTC).isoformat()
        self._end(event.run_id, event.status.value, attributes)  # "sleeping", "waiting" ...

    def run_ended(self, event: hooks.RunEnded) -> None:
        span = self._take(event.run_id)
        if span is None:
            return
        span.set_attribute("durably.run.status", event.status.value)
        if event.status is RunStatus.FAILED and event.error is not None:
            error = event.error
            recorded = {"exception.type": error.type, "exception.message": error.message}
            span.add_event("exception", {**recorded, "exception.stacktrace": error.traceback})
            span.set_status(Status(StatusCode.ERROR, f"{error.type}: {error.message}"))
        elif event.status is RunStatus.FAILED:
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    def run_lost(self, event: hooks.RunLost) -> None:
        self._end(event.run_id, "lost", {"durably.lease.epoch": event.epoch})

    def run_released(self, event: hooks.RunReleased) -> None:
        self._end(event.run_id, "released", {"durably.release.reason": event.reason})

    # -- the open execution spans --------------------------------------------------
    def _end(self, run_id: str, name: str, attributes: Attributes) -> None:
        span = self._take(run_id)
        if span is not None:
            span.add_event(name, attributes)
            span.end()

    def _take(self, run_id: str) -> Span | None:
        """The run's oldest open execution span, now no longer open."""
        with self._lock:
            segment = self._open.get(run_id)
            span = segment.popleft() if segment else None
            if segment is not None and not segment:
                del self._open[run_id]
            return span

    def _latest(self, run_id: str) -> Span | None:
        with self._lock:
            segment = self._open.get(run_id)
            return segment[-1] if segment else None

    def _context_of(self, run_id: str) -> otel_context.Context | None:
        """A context whose span is the run's latest open execution span."""
        span = self._latest(run_id)
        return None if span is None else trace.set_span_in_context(span)

    def _discard(self, run_id: str, span: Span) -> None:
        with self._lock:
            segment = self._open.get(run_id)
            if segment is not None and span in segment:
                segment.remove(span)
                if not segment:
                    del self._open[run_id]


class _Current(AbstractContextManager[object]):
    """A span current inside; an error leaving it is recorded on it and ends it. It
    ends here on leaving (a step's) unless ``later`` is given (an execution's, ended
    when the engine tells how the execution ended; on an error, ``later()`` is called
    first: it is not open any more)."""

    __slots__ = ("_later", "_span", "_token")

    def __init__(self, span: Span, later: Callable[[], None] | None = None) -> None:
        self._span = span
        self._later = later
        self._token: Token[otel_context.Context] | None = None

    def __enter__(self) -> Span:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            otel_context.detach(self._token)
        if error is not None:
            if self._later is not None:
                self._later()
            if self._span.is_recording():
                self._span.record_exception(error)
                self._span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        if error is not None or self._later is None:
            self._span.end()


# Log correlation is one setting of the process: the ``durably.logs.trace_ids`` found
# when the first instrumentation opened, and how many are open.
_traced: weakref.WeakSet[Engine] = weakref.WeakSet()  # the engines a Tracing is open on
_traced_lock = threading.Lock()
_logs_lock = threading.Lock()
_logs_open = 0
_logs_before: TraceIds | None = None


def _correlate(change: int) -> None:
    """Count an instrumentation opened (+1) or closed (-1): the first sets the hook of
    ``durably.logs`` (when there is one), the last restores what it was."""
    global _logs_open, _logs_before
    try:
        import durably.logs as logs  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return
    if not hasattr(logs, "trace_ids"):
        return
    with _logs_lock:
        _logs_open += change
        if change > 0 and _logs_open == 1:
            _logs_before, logs.trace_ids = logs.trace_ids, current_trace_ids
        elif change < 0 and _logs_open == 0:
            logs.trace_ids, _logs_before = _logs_before, None


def _has_span(found: otel_context.Context) -> bool:
    return trace.get_current_span(found).get_span_context().is_valid


def _extract(stored: str | None) -> otel_context.Context:
    """The context stored with a run (an empty one if none, or unreadable)."""
    try:
        carrier = json.loads(stored) if stored else None
    except ValueError:
        carrier = None
    if not isinstance(carrier, dict):
        return otel_context.Context()
    text = {str(k): str(v) for k, v in carrier.items()}
    return propagate.extract(text, context=otel_context.Context())
