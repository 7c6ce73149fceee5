"""SQL of claiming: runnable runs taken with a lease, within their queue's limits,
each with its whole journal (one query for all of them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from durably.queues import Queue
from durably.records import Claim, JournalEntry, RunRow, RunStatus
from durably.stores.schema import ENDED, ENTRY_COLUMNS, RUN_COLUMNS, entry_from_row, run_from_row


class ClaimSql:
    """Mixed into :class:`~durably.stores.sql.SqlStore`."""

    #: Appended to the claim's inner SELECT (``FOR UPDATE SKIP LOCKED`` on PostgreSQL).
    CLAIM_LOCK: ClassVar[str] = ""
    #: Serializes the claimers of one limited queue for the transaction (one parameter).
    QUEUE_LOCK: ClassVar[str] = ""

    if TYPE_CHECKING:  # provided by SqlStore

        def sql(self, text: str) -> str: ...
        @staticmethod
        def _placeholders(n: int) -> str: ...

    def claim_runs(
        self,
        tx: Any,
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
            "available_at <= {now}",
            f"status NOT IN ({ENDED})",
            "(owner IS NULL OR lease_until < {now})",
            f"workflow IN ({self._placeholders(len(workflows))})",
        ]
        params: list[Any] = [*workflows]
        if queues is not None:
            where.append(f"queue IN ({self._placeholders(len(queues))})")
            params += queues
        if exclude:
            where.append(f"queue NOT IN ({self._placeholders(len(exclude))})")
            params += exclude
        if limits is None:
            target = (
                f"run_id IN (SELECT run_id FROM runs WHERE {' AND '.join(where)} "
                f"ORDER BY priority DESC, available_at LIMIT ?{self.CLAIM_LOCK})"
            )
            params.append(limit)
        else:
            ids = self._within_limits(tx, limits, " AND ".join(where), params, limit)
            if not ids:
                return []
            target, params = f"run_id IN ({self._placeholders(len(ids))})", ids
        rows = tx.execute(
            self.sql(
                "UPDATE runs SET owner = ?, epoch = epoch + 1, lease_until = {now} + ?, "
                "status = ?, attempts = attempts + 1, wake_pending = 0, updated_at = {now}, "
                f"started_at = COALESCE(started_at, {{now}}) WHERE {target} "
                f"RETURNING {RUN_COLUMNS}"
            ),
            (owner, lease, RunStatus.RUNNING.value, *params),
        ).fetchall()
        return self._with_journals(tx, [run_from_row(r) for r in rows])

    def _within_limits(
        self, tx: Any, queue: Queue, where: str, params: list[Any], limit: int
    ) -> list[str]:
        """Runnable runs of a limited queue that fit its limits, claimers serialized."""
        if self.QUEUE_LOCK:
            tx.execute(self.sql(self.QUEUE_LOCK), (f"durably.queue.{queue.name}",))
        running = "owner IS NOT NULL AND lease_until >= {now}"
        if queue.concurrency is not None:
            (busy,) = tx.execute(
                self.sql(f"SELECT COUNT(*) FROM runs WHERE queue = ? AND {running}"),
                (queue.name,),
            ).fetchone()
            limit = min(limit, queue.concurrency - busy)
        if queue.rate_limit is not None:
            (started,) = tx.execute(
                self.sql("SELECT COUNT(*) FROM runs WHERE queue = ? AND started_at > {now} - ?"),
                (queue.name, queue.rate_period),
            ).fetchone()
            limit = min(limit, queue.rate_limit[0] - started)
        if limit <= 0:
            return []
        order = "ORDER BY priority DESC, available_at"
        if queue.partition_concurrency is None:
            sql = f"SELECT run_id FROM runs WHERE {where} {order} LIMIT ?"
            return [r[0] for r in tx.execute(self.sql(sql), (*params, limit))]
        # Rank the candidates within their partition; a rank over the partition's free
        # slots waits, so one claim never takes more of a key than it may run.
        sql = (
            "SELECT c.run_id FROM (SELECT run_id, partition_key, priority, available_at, "
            f"ROW_NUMBER() OVER (PARTITION BY partition_key {order}) AS nth "
            f"FROM runs WHERE {where}) c LEFT JOIN (SELECT partition_key, COUNT(*) AS n "
            f"FROM runs WHERE queue = ? AND partition_key IS NOT NULL AND {running} "
            "GROUP BY partition_key) k ON k.partition_key = c.partition_key "
            "WHERE c.partition_key IS NULL OR c.nth + COALESCE(k.n, 0) <= ? "
            "ORDER BY c.priority DESC, c.available_at LIMIT ?"
        )
        rows = tx.execute(self.sql(sql), (*params, queue.name, queue.partition_concurrency, limit))
        return [r[0] for r in rows]

    def _with_journals(self, tx: Any, runs: list[RunRow]) -> list[Claim]:
        """Load the journals of claimed runs, all in one query."""
        if not runs:
            return []
        journals: dict[str, list[JournalEntry]] = {r.run_id: [] for r in runs}
        for row in tx.execute(
            self.sql(
                f"SELECT run_id, {ENTRY_COLUMNS} FROM journal "
                f"WHERE run_id IN ({self._placeholders(len(runs))}) ORDER BY run_id, seq"
            ),
            [r.run_id for r in runs],
        ):
            journals[row[0]].append(entry_from_row(row[1:]))
        return [Claim(r, tuple(journals[r.run_id])) for r in runs]
