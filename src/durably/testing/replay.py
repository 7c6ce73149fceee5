"""Replay recorded runs against the code of this process, to gate a deploy.

:func:`replay_check` reads the journals of recent runs (ended and in flight) and runs
each through its workflow's current code as a worker would replay it, up to the end of
what was recorded: no step body runs and nothing is written. A journal position the
code now reaches with another call (a step inserted, removed, renamed or reordered, not
guarded by ``durably.patched``) is a divergence, reported with the run, the position,
what was recorded and what the code calls now, and where. ``durably replay-check`` is
the same from a shell, with an exit code for CI.
"""

from __future__ import annotations

import asyncio
import inspect
import traceback
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, cast

from durably import registry
from durably.committer import Committer
from durably.engine import Engine
from durably.errors import WorkflowNotFound, describe, in_durably
from durably.hooks import Hooks
from durably.records import Claim, JournalEntry, RunFilter, RunRow, RunStatus
from durably.runtime.context import RunContext, activate, deactivate
from durably.runtime.unwinding import ContinueAsNew, Suspend
from durably.serialization import decode_call
from durably.stores.base import Store


@dataclass(frozen=True, slots=True)
class Divergence:
    """Where a recorded run and the current code part ways."""

    run_id: str
    workflow: str
    position: int
    recorded: str
    current: str
    call_site: str


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What :func:`replay_check` found."""

    checked: int  # runs replayed
    divergences: list[Divergence] = field(default_factory=list)
    #: Runs not replayed, by workflow: no workflow of that name is registered here.
    unknown: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.divergences


class ReplayWrite(Exception):
    """Replay reached code that would write: it never does, by construction."""


class _ReadOnly:
    """The store of a replay: every read of the real one, no transaction."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def transact(self, work: Any) -> Any:
        raise ReplayWrite("a replay check wrote to the store")


class _Replaying:
    """The host of a replay: always draining, so the first position that was not
    recorded suspends the run there (nothing new runs)."""

    owner = "replay-check"
    lease = 0.0
    draining = True
    mocks: dict[str, Any] = {}

    def __init__(self, store: Store) -> None:
        self.now = store.now

    def has_room(self, queue: str = "default", workflow: str | None = None) -> bool:
        return False

    def dispatch(self, claim: Claim) -> None:
        raise ReplayWrite("a replay check started a run")


def replay_check(
    store_or_url: str | Store | Engine,
    workflows: Sequence[str] | None = None,
    sample: int = 100,
) -> ReplayReport:
    """Replay the newest ``sample`` runs (of workflows matching ``workflows``, name
    patterns; all by default) against the workflows registered in this process."""
    if sample < 1:
        raise ValueError(f"sample must be at least 1, not {sample!r}")
    if _loop_running():  # an async test or app: asyncio.run replays need a thread's own
        with ThreadPoolExecutor(1, thread_name_prefix="durably-replay-check") as pool:
            return pool.submit(replay_check, store_or_url, workflows, sample).result()
    owned = not isinstance(store_or_url, Engine)
    if isinstance(store_or_url, Engine):
        engine = store_or_url
    else:
        engine = Engine(store_or_url, execute=False)
    try:
        store = engine.store
        where = RunFilter(workflows=tuple(workflows or ()))
        rows = store.list_runs(where, sample)
        divergences: list[Divergence] = []
        unknown: dict[str, int] = {}
        checked = 0
        committer = Committer(cast(Store, _ReadOnly(store)))
        try:
            for row in rows:
                try:
                    workflow = registry.lookup(row.workflow)
                except WorkflowNotFound:
                    unknown[row.workflow] = unknown.get(row.workflow, 0) + 1
                    continue
                found = _replay(store, committer, workflow, row, store.journal(row.run_id))
                checked += 1
                if found is not None:
                    divergences.append(found)
        finally:
            committer.close()
        return ReplayReport(checked, divergences, unknown)
    finally:
        if owned:
            engine.close()


def _replay(
    store: Store,
    committer: Committer,
    workflow: registry.Workflow[Any, Any],
    row: RunRow,
    journal: list[JournalEntry],
) -> Divergence | None:
    ctx = RunContext(
        store=cast(Store, _ReadOnly(store)),
        committer=committer,
        workflow=workflow,
        claim=Claim(replace(row, owner=_Replaying.owner), tuple(journal)),
        hooks=Hooks(),
        clock=store.clock,
        max_payload=1 << 62,
        host=_Replaying(store),
    )
    ctx.cancel_requested = False  # replay as it ran: a cancel would stop it early
    token = activate(ctx)
    raised: BaseException | None = None
    try:
        args, kwargs = decode_call(workflow.fn, row.input, what=f"input of run {row.run_id}")
        result = workflow.fn(*args, **kwargs)
        if inspect.iscoroutine(result):
            asyncio.run(result)
        ctx.check_finished()
    except (ReplayWrite, KeyboardInterrupt):
        raise
    except (Suspend, ContinueAsNew):  # where replay stops: the first position not recorded
        pass
    except BaseException as exc:  # the run's own error, or one the code raises now
        raised = exc
    finally:
        deactivate(token)
    fatal = ctx.fatal
    if fatal is not None:
        return Divergence(
            row.run_id, row.workflow, fatal.position, fatal.recorded, fatal.current, fatal.call_site
        )
    error = row.error if row.status is RunStatus.FAILED else None
    if raised is None or (error is not None and error.type == type(raised).__qualname__):
        return None
    recorded = f"no error (the run is {row.status.value})" if error is None else error.type
    current = f"raises {type(raised).__qualname__}: {describe(raised)}"
    site = _site(raised) or f"decoding the input for {row.workflow}'s signature"
    return Divergence(row.run_id, row.workflow, ctx.next_seq, recorded, current, site)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _site(exc: BaseException) -> str | None:
    """Where the code raised ``exc`` (its innermost frame outside durably), as a call
    site; None when durably raised it before the code ran."""
    frames = traceback.extract_tb(exc.__traceback__)
    theirs = [frame for frame in frames if not in_durably(frame.filename)]
    if not theirs:
        return None
    frame = theirs[-1]
    return f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} in {frame.name}"


__all__ = ["Divergence", "ReplayReport", "replay_check"]
