"""The step loop: a step answered from the journal, or run, retried and checkpointed.

A recorded step returns its recorded result (or raises its recorded failure)
without running. Otherwise its body runs; each attempt's failure goes through
the step's retry policy. A short backoff is slept in place; a long one frees the
worker (the run is rescheduled through the claim path, the attempts so far
recorded). The result is checkpointed in one write, and the step returns what
replay would return, so first execution and replay agree.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from durably import crashpoints
from durably.clock import Clock
from durably.current import Attempt
from durably.errors import (
    ErrorInfo,
    Interrupted,
    SerializationError,
    StepFailed,
    WorkflowCancelled,
)
from durably.hooks import Hooks, Scoped, StepFinished, StepStarted, emit, made
from durably.records import EntryStatus, JournalEntry, RunStatus
from durably.registry import Step
from durably.retry import RESIDENT_DELAY
from durably.runtime.effects import Invoke, Plan, Sleep, Write
from durably.runtime.unwinding import Suspend
from durably.serialization import dumps, loads

_JSON_SCALARS = frozenset({int, str, bool, type(None)})
log = logging.getLogger("durably.worker")  # a failed attempt to be retried


class Scope(Protocol):
    """What the step loop needs from the run it executes in."""

    run_id: str
    workflow_name: str
    clock: Clock
    hooks: Hooks
    #: The largest result a step may return, in bytes.
    max_payload: int
    #: The step executing now and since when (monotonic), published by the heartbeat.
    current_step: str | None
    step_since: float
    #: Steps whose body is replaced, by name (``engine.mock_step``).
    mocks: dict[str, Step[Any, Any]]

    def gate(self) -> None: ...
    def now(self) -> float: ...
    def note(self, kind: str, detail: dict[str, Any]) -> None: ...
    def write_entry(self, entry: JournalEntry) -> Write: ...


def step_plan(
    scope: Scope,
    step: Step[Any, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    seq: int,
    entry: JournalEntry | None,
    site: str,
) -> Plan[Any]:
    """Replay or run ``step`` at journal position ``seq`` (``entry``: what is recorded there)."""
    what = f"result of step {step.name!r} in run {scope.run_id}"
    if entry is not None and entry.status is EntryStatus.COMPLETED:
        return loads(entry.output, step.result_hint, what=what)
    if entry is not None and entry.status is EntryStatus.FAILED:
        assert entry.error is not None
        raise StepFailed(step.name, entry.error, entry.attempts)
    scope.gate()
    clock, hooks = scope.clock, scope.hooks
    attempt = entry.attempts if entry is not None else 0
    started = entry.started_at if entry is not None and entry.started_at else clock.time()
    details = None  # what the last attempt's body gave its heartbeats, in this process
    while True:
        attempt += 1
        scope.current_step, scope.step_since = step.name, clock.monotonic()
        this = Attempt(step.name, seq, attempt, scope.step_since, details)
        started_event = None
        if hooks.step_started or hooks.step_executing:
            begun = (scope.run_id, scope.workflow_name, step.name, seq, attempt)
            started_event = made(StepStarted, begun)
            if hooks.step_started:
                emit(hooks.step_started, started_event)
        crashpoints.hit("step.before_body")
        try:
            try:
                body = scope.mocks.get(step.name, step) if scope.mocks else step
                if started_event is None or not hooks.step_executing:
                    result = yield Invoke(body, args, kwargs, this)
                else:  # the subscribers' scopes around the body (a current span)
                    with Scoped(hooks.step_executing, started_event):
                        result = yield Invoke(body, args, kwargs, this)
            except (KeyboardInterrupt, SystemExit) as exc:  # the body's, never the engine's
                raise Interrupted.of(exc, f"by step {step.name!r}") from exc
            took = clock.monotonic() - scope.step_since if hooks.step_finished else 0.0
            crashpoints.hit("step.after_body")
            text = dumps(result, what=what, limit=scope.max_payload)
        except WorkflowCancelled:
            raise  # the body saw the run's cancellation (is_cancelled()): the run ends cancelled
        except Exception as exc:
            took = _took(scope)
            delay = None if isinstance(exc, SerializationError) else _delay(step, attempt, exc)
            yield from _retry_or_fail(scope, step, (seq, site, started, attempt), exc, took, delay)
            continue
        finally:
            scope.current_step = None
            details = this.details
        yield scope.write_entry(
            JournalEntry(
                seq,
                "step",
                step.name,
                EntryStatus.COMPLETED,
                text,
                None,
                attempt,
                started,
                clock.time(),
                site,
            )
        )
        crashpoints.hit("step.after_checkpoint")
        if hooks.step_finished:  # built in line: this runs on every step
            fields = (scope.run_id, scope.workflow_name, step.name, seq, attempt, "completed", took)
            emit(hooks.step_finished, made(StepFinished, (*fields, None)))
        # Return what replay would return, so first run and replay agree.
        hint = step.result_hint
        if type(result) in _JSON_SCALARS and (hint is Any or hint is type(result)):
            return result  # decoding its JSON would give back the same value
        return loads(text, hint, what=what)


def _retry_or_fail(
    scope: Scope,
    step: Step[Any, Any],
    position: tuple[int, str, float, int],
    exc: Exception,
    took: float,
    delay: float | None,
) -> Plan[None]:
    """After a failed attempt: fail the step for good (no ``delay``), free the worker until
    a long backoff is over, or sleep a short one here and return to try again."""
    seq, site, started, attempt = position
    error = ErrorInfo.from_exception(exc)
    detail = {"step": step.name, "position": seq, "attempt": attempt}
    scope.note("attempt failed", {**detail, "error": f"{error.type}: {error.message[:500]}"})
    if delay is None:
        failed = yield from _fail(scope, step, seq, site, started, attempt, exc, took)
        raise failed from exc
    if scope.hooks.step_finished:
        event = _finished(scope, step, seq, attempt, "retrying", took, error)
        emit(scope.hooks.step_finished, event)
    if log.isEnabledFor(logging.INFO):  # expected (a transient error): INFO, not WARNING
        about = {"run_id": scope.run_id, "workflow": scope.workflow_name, "step": step.name}
        log.info(
            "run %s (%s): step %s attempt %d failed (%s: %s); retrying in %.3gs",
            *(scope.run_id, scope.workflow_name, step.name, attempt, error.type, error.message),
            delay,
            extra={**about, "attempt": attempt},
        )
    if delay > RESIDENT_DELAY:  # free the worker; the claim path brings it back
        retrying = JournalEntry(
            seq, "step", step.name, EntryStatus.RETRYING, None, error, attempt, started, None, site
        )
        raise Suspend(RunStatus.PENDING, scope.now() + delay, (retrying,)) from exc
    yield Sleep(delay)  # a short backoff stays resident


def _delay(step: Step[Any, Any], attempt: int, exc: Exception) -> float | None:
    """When to try again, or None; an error whose own attributes break the policy fails."""
    try:
        return step.policy.next_delay(attempt, exc)
    except Exception:
        return None


def _fail(
    scope: Scope,
    step: Step[Any, Any],
    seq: int,
    site: str,
    started: float,
    attempt: int,
    exc: Exception,
    took: float,
) -> Plan[StepFailed]:
    """Record the step's failure; returns the error the workflow sees."""
    error = ErrorInfo.from_exception(exc)
    yield scope.write_entry(
        JournalEntry(
            seq,
            "step",
            step.name,
            EntryStatus.FAILED,
            None,
            error,
            attempt,
            started,
            scope.clock.time(),
            site,
        )
    )
    if scope.hooks.step_finished:
        event = _finished(scope, step, seq, attempt, "failed", took, error)
        emit(scope.hooks.step_finished, event)
    return StepFailed(step.name, error, attempt)


def _took(scope: Scope) -> float:
    """How long the body ran, when someone listens (a clock read spared otherwise)."""
    return scope.clock.monotonic() - scope.step_since if scope.hooks.step_finished else 0.0


def _finished(
    scope: Scope,
    step: Step[Any, Any],
    seq: int,
    attempt: int,
    status: str,
    seconds: float,
    error: ErrorInfo | None = None,
) -> StepFinished:
    fields = (scope.run_id, scope.workflow_name, step.name, seq, attempt, status, seconds, error)
    return made(StepFinished, fields)
