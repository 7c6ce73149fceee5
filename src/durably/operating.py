"""What operators do with runs: find them, count them, read their history, fork them,
purge the old ones. The engine's methods for the CLI and the dashboard; every one
works from the database alone, without the workflows' code."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from durably.clock import Clock
from durably.committer import Committer
from durably.records import (
    HistoryEvent,
    JournalEntry,
    NewRun,
    Run,
    RunFilter,
    RunRow,
    RunStatus,
    new_run_id,
    timestamp,
)
from durably.retention import Retention
from durably.runtime.retrying import COMPENSATION_SITE
from durably.serialization import loads
from durably.stores.base import Store
from durably.worker.sweeper import Sweeper

Moment = datetime | float | None


class RunPage(list[Run]):
    """A page of runs, newest first; ``cursor`` fetches the next page (None: the last)."""

    def __init__(self, runs: Iterable[Run], cursor: str | None) -> None:
        super().__init__(runs)
        self.cursor = cursor


class Operations:
    """Mixed into :class:`durably.Engine`."""

    if TYPE_CHECKING:  # provided by the engine
        store: Store
        committer: Committer
        clock: Clock

        def _row(self, run_id: str) -> RunRow: ...
        def _woken(self) -> None: ...

    def list_runs(
        self,
        workflow: str | Iterable[str] | None = None,
        status: RunStatus | str | Iterable[RunStatus | str] | None = None,
        limit: int = 100,
        *,
        queue: str | None = None,
        since: Moment = None,
        until: Moment = None,
        parent: str | None = None,
        key: str | None = None,
        cursor: str | None = None,
    ) -> RunPage:
        """Runs newest first, ``limit`` at a time; pass ``cursor=page.cursor`` for the next.

        Args:
            workflow: a workflow name or pattern (``"billing.*"``), or several.
            status: a status (``"failed"``), or several.
            queue: only this queue. parent: children of this run. key: the run started
                with this idempotency key.
            since, until: created at or after / before (a datetime, or seconds since
                the epoch).
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive int, not {limit!r}")
        where = run_filter(workflow, status, queue, since, until, parent, key)
        rows = self.store.list_runs(where, limit + 1, _decode_cursor(cursor))
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = _encode_cursor(rows[-1]) if more and rows else None
        return RunPage((Run.from_row(r) for r in rows), next_cursor)

    async def list_runs_async(self, *args: Any, **kwargs: Any) -> RunPage:
        """Async twin of :meth:`list_runs`."""
        return await asyncio.to_thread(self.list_runs, *args, **kwargs)

    def count_runs(
        self,
        workflow: str | Iterable[str] | None = None,
        status: RunStatus | str | Iterable[RunStatus | str] | None = None,
        *,
        queue: str | None = None,
        since: Moment = None,
        until: Moment = None,
        parent: str | None = None,
        key: str | None = None,
    ) -> int:
        """How many runs :meth:`list_runs` with these filters would list in all."""
        return self.store.count_runs(run_filter(workflow, status, queue, since, until, parent, key))

    async def count_runs_async(self, *args: Any, **kwargs: Any) -> int:
        """Async twin of :meth:`count_runs`."""
        return await asyncio.to_thread(self.count_runs, *args, **kwargs)

    def pending_signals(self, run_id: str) -> list[tuple[str, Any]]:
        """The signals sent to the run that it has not received yet: ``(name, payload)``,
        in the order they were sent (each is received once, by ``wait_for_signal``)."""
        self._row(run_id)
        return [
            (name, loads(text, what=f"signal {name!r}"))
            for name, text, _ in self.store.pending_signals(run_id)
        ]

    def count_steps(self, run_id: str) -> int:
        """How many positions the run's journal has (the length of ``engine.steps``)."""
        self._row(run_id)
        return self.store.journal_size(run_id)

    def history(self, run_id: str, limit: int | None = None) -> list[HistoryEvent]:
        """The run's life, in time order: created, claimed (by which worker, from which),
        step attempts failed and completed, suspended (timer, signal, child, backoff),
        released, cancel requested, compensation, retried, forked, finished.
        ``limit``: only the newest events, that many at most."""
        row = self._row(run_id)
        start = 0 if limit is None else max(0, self.store.journal_size(run_id) - limit)
        journal = self.store.journal(run_id, start)
        events = [_created(row)]
        events += [
            _event(at, kind, _dated(detail)) for at, kind, detail in self.store.history(run_id)
        ]
        events += [e for entry in journal for e in _journal_events(entry)]
        if row.status.terminal:
            events.append(_finished(row))
        events.sort(key=lambda e: e.at)
        return events if limit is None else events[-limit:]

    async def history_async(self, run_id: str) -> list[HistoryEvent]:
        """Async twin of :meth:`history`."""
        return await asyncio.to_thread(self.history, run_id)

    def waiting_for(self, run_id: str) -> str | None:
        """What the run waits for now, in words ("sleeping until ...", "waiting for
        signal 'approved'", "waiting for child ..."); ``None`` once it has ended."""
        row = self._row(run_id)
        if row.status.terminal:
            return None
        if row.status is RunStatus.RUNNING:
            step = f" in step {row.current_step!r}" if row.current_step else ""
            return f"running{step} on {row.owner}"
        due = _when(row.available_at)
        journal = self.store.journal(run_id)
        last = journal[-1] if journal else None
        retrying = last is not None and last.kind == "step" and last.status.value == "retrying"
        if retrying and row.status in (RunStatus.SLEEPING, RunStatus.PENDING):
            assert last is not None  # a backoff: slept on, or the run rescheduled after it
            return f"retrying step {last.name!r} (attempt {last.attempts + 1}) at {due}"
        if row.status is RunStatus.SLEEPING:
            return f"sleeping until {due}"
        if row.status is RunStatus.WAITING:
            until = "" if row.available_at is None else f" (until {due})"
            if last is not None and last.kind == "signal" and last.status.value == "waiting":
                return f"waiting for signal {last.name!r}{until}"
            live = [RunStatus.PENDING, RunStatus.RUNNING, RunStatus.SLEEPING, RunStatus.WAITING]
            kids = [r.run_id for r in self.list_runs(parent=run_id, status=live, limit=3)]
            if kids:
                return f"waiting for child {', '.join(kids)}{until}"
            return f"waiting to be woken{until}"
        if row.available_at is not None and row.available_at > self.store.now():
            return f"due at {due}"
        return "waiting for a worker to claim it"

    async def waiting_for_async(self, run_id: str) -> str | None:
        """Async twin of :meth:`waiting_for`."""
        return await asyncio.to_thread(self.waiting_for, run_id)

    def fork(self, run_id: str, from_step: int) -> str:
        """Start a new run of the same workflow and input whose journal is ``run_id``'s
        up to position ``from_step``: those positions replay, the rest execute again.

        Returns the new run's id. A child started before ``from_step`` is the
        original's, whose result the fork replays.

        Raises:
            RunNotFound: no such run. ValueError: ``from_step`` is not a position of it.
        """
        row = self._row(run_id)
        journal = self.store.journal(run_id)
        if isinstance(from_step, bool) or not isinstance(from_step, int):
            raise ValueError(f"from_step must be an int, not {from_step!r}")
        if not 0 <= from_step <= len(journal):
            raise ValueError(
                f"run {run_id} has {len(journal)} journal positions: from_step must be "
                f"from 0 to {len(journal)}, not {from_step}"
            )
        new = NewRun(
            run_id=new_run_id(),
            workflow=row.workflow,
            input=row.input,
            queue=row.queue,
            priority=row.priority,
            partition_key=row.partition_key,
        )
        self.committer.run(lambda tx: self.store.fork_run(tx, run_id, new, from_step))
        self._woken()
        return new.run_id

    async def fork_async(self, run_id: str, from_step: int) -> str:
        """Async twin of :meth:`fork`."""
        return await asyncio.to_thread(self.fork, run_id, from_step)

    def purge(
        self, retention: Retention, *, dry_run: bool = False, batch: int | None = None
    ) -> int:
        """Delete the run trees that ended longer ago than ``retention`` keeps them, in
        transactions of ``batch`` trees (default: the retention's), paced as the
        retention sweeper is; never a run that has not ended. Returns how many runs
        went (or would go, with ``dry_run``)."""
        if dry_run:
            return self.store.purge(retention.cutoffs(self.store.now()), 10**9, dry_run=True)
        sweeper = Sweeper(
            self.store, self.clock, retention, owner="purge", lease=0, stop=threading.Event()
        )
        return sweeper.sweep(fleet=False, batch=batch)

    async def purge_async(
        self, retention: Retention, *, dry_run: bool = False, batch: int | None = None
    ) -> int:
        """Async twin of :meth:`purge`."""
        return await asyncio.to_thread(self.purge, retention, dry_run=dry_run, batch=batch)


def run_filter(
    workflow: str | Iterable[str] | None,
    status: RunStatus | str | Iterable[RunStatus | str] | None,
    queue: str | None,
    since: Moment,
    until: Moment,
    parent: str | None,
    key: str | None,
) -> RunFilter:
    """The filter of a listing, checked (an unknown status is a ValueError naming them)."""
    workflows = (workflow,) if isinstance(workflow, str) else tuple(workflow or ())
    statuses = (status,) if isinstance(status, str | RunStatus) else tuple(status or ())
    known = ", ".join(s.value for s in RunStatus)
    checked = []
    for s in statuses:
        try:
            checked.append(RunStatus(s))
        except ValueError:
            raise ValueError(f"unknown status {s!r}; the statuses are: {known}") from None
    return RunFilter(
        workflows=workflows,
        statuses=tuple(checked),
        queue=queue,
        since=_moment(since),
        until=_moment(until),
        parent_id=parent,
        idempotency_key=key,
    )


def _moment(value: Moment) -> float | None:
    if value is None or isinstance(value, int | float):
        return value
    if isinstance(value, datetime):
        return value.timestamp()
    raise ValueError(f"expected a datetime or seconds since the epoch, not {value!r}")


def _when(seconds: float | None) -> str:
    stamp = timestamp(seconds)
    return "?" if stamp is None else stamp.isoformat(timespec="seconds")


def _encode_cursor(row: RunRow) -> str:
    raw = json.dumps([row.created_at, row.run_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> tuple[float, str] | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, run_id = json.loads(base64.urlsafe_b64decode(padded))
        return float(created_at), str(run_id)
    except (ValueError, TypeError, binascii.Error):
        raise ValueError(f"invalid cursor {cursor!r}: pass the cursor a page gave") from None


def _event(at: float | None, kind: str, detail: dict[str, Any]) -> HistoryEvent:
    return HistoryEvent(timestamp(at) or datetime.fromtimestamp(0, UTC), kind, detail)


def _dated(detail: dict[str, Any]) -> dict[str, Any]:
    """A suspension's ``until`` (stored as Unix seconds) as the time it is, like a timer's."""
    until = detail.get("until")
    if isinstance(until, int | float) and not isinstance(until, bool):
        return {**detail, "until": str(timestamp(until))}
    return detail


def _created(row: RunRow) -> HistoryEvent:
    detail: dict[str, Any] = {"workflow": row.workflow, "queue": row.queue}
    if row.parent_id is not None:
        detail["parent"] = row.parent_id
    if row.idempotency_key is not None:
        detail["key"] = row.idempotency_key
    return _event(row.created_at, "created", detail)


def _finished(row: RunRow) -> HistoryEvent:
    detail: dict[str, Any] = {"status": row.status.value}
    if row.error is not None:
        detail["error"] = f"{row.error.type}: {row.error.message}"
    if row.continued_to is not None:
        detail["continued_to"] = row.continued_to
    return _event(row.updated_at, "finished", detail)


def _journal_events(entry: JournalEntry) -> list[HistoryEvent]:
    """What a journal entry tells of the run's life (recorded values tell nothing)."""
    where = {"position": entry.seq, "name": entry.name}
    error = None if entry.error is None else f"{entry.error.type}: {entry.error.message}"
    if entry.kind == "step":
        kind = "compensation" if entry.call_site == COMPENSATION_SITE else "step"
        if entry.status.value == "retrying":  # each failed attempt is in the history table
            return []
        detail = {**where, "status": entry.status.value, "attempts": entry.attempts}
        if error is not None:
            detail["error"] = error
        started = _event(entry.started_at, f"{kind} started", where)
        return [started, _event(entry.finished_at, f"{kind} {entry.status.value}", detail)]
    if entry.kind == "sleep":
        until = timestamp(loads(entry.output, what="a timer"))
        return [_event(entry.started_at, "timer set", {**where, "until": str(until)})]
    if entry.kind == "signal":
        if entry.status.value == "waiting":
            return [_event(entry.started_at, "waiting for signal", where)]
        received = "signal received" if entry.output is not None else "signal timed out"
        return [_event(entry.finished_at, received, where)]
    if entry.kind == "child":
        child = loads(entry.output, what="a child id")
        return [_event(entry.started_at, "child started", {**where, "child": child})]
    if entry.kind == "join":
        done = {**where, "status": entry.status.value}
        return [_event(entry.finished_at, "child ended", done)]
    if entry.kind == "event":
        return [_event(entry.finished_at, "event set", where)]
    return []
