"""SQL of claiming: runnable runs taken with a lease, within their queue's limits,
each with its whole journal (one query for all of them)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from durably.queues import Queue
from durably.records import Claim, JournalEntry, RunRow
from durably.stores.base import Transaction
from durably.stores.sql.rows import ENDED, entry_from_row, run_from_row
from durably.stores.sql.statements import execute, placeholders


class ClaimSql:
    """Mixed into :class:`~durably.stores.sql.store.SqlStore`."""

    #: Serializes the claimers of one limited queue for the transaction (one parameter).
    QUEUE_LOCK: ClassVar[str] = ""

    if TYPE_CHECKING:  # provided by SqlStore

        def sql(self, name: str, **parts: str) -> str: ...
        def template(self, name: str, **parts: str) -> str: ...
        def inline(self, statement: str) -> str: ...

    def claim_runs(
        self,
        tx: Transaction,
        owner: str,
        limit: int,
        lease: float,
        workflows: Sequence[str],
        queues: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
        limits: Queue | None = None,
    ) -> list[Claim]:
        if limit <= 0 or not workflows:
            return []
        where = [
            "available_at <= durably_now()",
            f"status NOT IN ({ENDED})",
            "(owner IS NULL OR lease_until < durably_now())",
            f"workflow IN ({placeholders(len(workflows))})",
        ]
        params: list[Any] = [*workflows]
        if queues is not None:
            where.append(f"queue IN ({placeholders(len(queues))})")
            params += queues
        if exclude:
            where.append(f"queue NOT IN ({placeholders(len(exclude))})")
            params += exclude
        if limits is None:
            target = f"run_id IN ({self.template('runnable', where=' AND '.join(where))})"
            params.append(limit)
        else:
            ids = self._within_limits(tx, limits, " AND ".join(where), params, limit)
            if not ids:
                return []
            target, params = f"run_id IN ({placeholders(len(ids))})", ids
        rows = execute(tx, self.sql("claim", target=target), (owner, lease, *params)).fetchall()
        runs = [run_from_row(r) for r in rows]
        sources = [r[-1] for r in rows]
        self._record_claims(tx, owner, runs, sources)
        return self._with_journals(tx, runs, sources)

    def _record_claims(
        self, tx: Transaction, owner: str, runs: list[RunRow], sources: list[str | None]
    ) -> None:
        """One history row per claim (off the hot path: a start in process is no claim)."""
        if not runs:
            return
        values = ",".join(["(?, durably_now(), 'claimed', ?)"] * len(runs))
        params: list[Any] = []
        for run, source in zip(runs, sources, strict=True):
            detail = {"worker": owner, "epoch": run.epoch, "attempt": run.attempts}
            if source is not None:
                detail["from"] = source  # taken back from a worker whose lease ran out, or died
            params += [run.run_id, json.dumps(detail)]
        statement = self.inline(f"INSERT INTO history (run_id, at, kind, detail) VALUES {values}")
        execute(tx, statement, params)

    def _within_limits(
        self, tx: Transaction, queue: Queue, where: str, params: list[Any], limit: int
    ) -> list[str]:
        """Runnable runs of a limited queue that fit its limits, claimers serialized."""
        if self.QUEUE_LOCK:
            execute(tx, self.inline(self.QUEUE_LOCK), (f"durably.queue.{queue.name}",))
        if queue.concurrency is not None:
            (busy,) = execute(tx, self.sql("executing_in_queue"), (queue.name,)).fetchone()
            limit = min(limit, queue.concurrency - busy)
        if queue.rate_limit is not None:
            (started,) = execute(
                tx, self.sql("started_in_queue"), (queue.name, queue.rate_period)
            ).fetchone()
            limit = min(limit, queue.rate_limit[0] - started)
        if limit <= 0:
            return []
        if queue.partition_concurrency is None:
            statement = self.inline(
                f"SELECT run_id FROM runs WHERE {where} ORDER BY priority DESC, available_at "
                "LIMIT ?"
            )
            return [r[0] for r in execute(tx, statement, (*params, limit))]
        statement = self.sql("runnable_within_partitions", where=where)
        rows = execute(tx, statement, (*params, queue.name, queue.partition_concurrency, limit))
        return [r[0] for r in rows]

    def _with_journals(
        self, tx: Transaction, runs: list[RunRow], sources: list[str | None]
    ) -> list[Claim]:
        """Load the journals of claimed runs, all in one query."""
        if not runs:
            return []
        journals: dict[str, list[JournalEntry]] = {r.run_id: [] for r in runs}
        statement = self.sql("journals", ids=placeholders(len(runs)))
        for row in execute(tx, statement, [r.run_id for r in runs]):
            journals[row[0]].append(entry_from_row(row[1:]))
        return [
            Claim(r, tuple(journals[r.run_id]), source)
            for r, source in zip(runs, sources, strict=True)
        ]
