"""PostgreSQL dialect: a connection pool, the database clock, error classification, NOTIFY.

The tables live in their own schema (default ``durably``). Claims use
``FOR UPDATE SKIP LOCKED``; a trigger announces runnable and finished runs on a
channel so workers and waiting handles in other processes react at once.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from durably.clock import SYSTEM, Clock
from durably.errors import StoreClosed, StoreError
from durably.stores.base import Transaction, redact
from durably.stores.sql import schema as versions
from durably.stores.sql.statements import execute, pyformat
from durably.stores.sql.store import SqlStore

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg_pool import ConnectionPool, PoolClosed
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "PostgreSQL support needs psycopg 3: pip install 'durably[postgres]'"
    ) from exc

T = TypeVar("T")
log = logging.getLogger("durably.store")
#: How long PostgreSQL lets a session of this store sit idle inside a transaction
#: before it ends the session (and releases its locks).
IDLE_IN_TRANSACTION_MS = 10_000

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_MIGRATION_LOCK = 0x6475726162  # pg_advisory_xact_lock key: "durab"
_TRANSIENT = (
    psycopg.OperationalError,  # connection lost, server restarting, admin shutdown
    pg_errors.SerializationFailure,
    pg_errors.DeadlockDetected,
)


class PostgresStore(SqlStore):
    """A store in a PostgreSQL database, shared by any number of workers and machines.

    Args:
        url: a libpq URL, ``postgresql://user:password@host:port/dbname``.
        schema: the schema of durably's tables (created if missing).
        pool_size: connections held at most.
        retry_for: seconds a transient failure (a restart, a dropped connection)
            is retried before it is raised as :class:`~durably.errors.StoreError`.
        migrate: bring the schema up to date now (off only to test migrations).
        clock: this host's clock (the database keeps its own for leases and timers).
        connect_timeout: seconds the first connection may take before the store gives up
            with the server's reason (a wrong host, password, database ...).
    """

    PARTS = {"claim_lock": " FOR UPDATE SKIP LOCKED", "row_lock": " FOR UPDATE"}
    QUEUE_LOCK = "SELECT pg_advisory_xact_lock(hashtext(?))"
    commits_on_loop = False

    def __init__(
        self,
        url: str,
        *,
        schema: str = "durably",
        pool_size: int = 5,
        retry_for: float = 60.0,
        migrate: bool = True,
        clock: Clock = SYSTEM,
        connect_timeout: float = 5.0,
    ) -> None:
        if not _IDENTIFIER.match(schema):
            raise ValueError(f"schema must be a lowercase SQL identifier, not {schema!r}")
        self.clock = clock
        self._prepare()
        self.url = url
        self.schema = schema
        self.channel = f"durably_{schema}"
        self.retry_for = retry_for
        self._heartbeat: psycopg.Connection[Any] | None = None
        self._heartbeat_lock = threading.Lock()
        self._check_reachable(connect_timeout)
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True},
            configure=self._configure,
            open=False,
            name=f"durably-{schema}",
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout + 10)
        except Exception as exc:
            raise StoreError(f"cannot connect to PostgreSQL at {redact(url)}: {exc}") from exc
        if migrate:
            self.migrate()

    def _check_reachable(self, timeout: float) -> None:
        """Connect once, briefly: a wrong host, port, database, password or parameter is a
        StoreError within ``timeout`` saying what the server (or libpq) said."""
        try:
            psycopg.connect(self.url, connect_timeout=max(1, round(timeout))).close()
        except psycopg.Error as exc:
            reason = str(exc).strip() or type(exc).__name__
            raise StoreError(
                f"cannot connect to PostgreSQL at {redact(self.url)}: {reason}"
            ) from exc

    @classmethod
    def from_url(cls, url: str, *, clock: Clock = SYSTEM, migrate: bool = True) -> PostgresStore:
        """A store from a URL; ``?schema=name`` picks the schema (default ``durably``);
        ``?search_path=name`` is taken as the schema too."""
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        given = dict(query)
        schemas = {given[k] for k in ("schema", "search_path") if k in given}
        if len(schemas) > 1:
            raise ValueError(f"the URL names two schemas: {sorted(schemas)}")
        schema = schemas.pop() if schemas else "durably"
        rest = urlencode([(k, v) for k, v in query if k not in ("schema", "search_path")])
        base = url.split("#", 1)[0].split("?", 1)[0]  # as written: urlunsplit would turn
        url = f"{base}?{rest}" if rest else base  # 'postgresql:///db' into 'postgresql:/db'
        return cls(url, schema=schema, clock=clock, migrate=migrate)

    def __repr__(self) -> str:
        return f"PostgresStore({redact(self.url)!r}, schema={self.schema!r})"

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(f"SET search_path TO {self.schema}")
        # Every statement here is a short OLTP one; JIT compiling one whose estimate
        # looks large (a purge over a big table) costs hundreds of milliseconds.
        conn.execute("SET jit = off")
        # A transaction here never waits on user code: one left idle (its process paused
        # by SIGSTOP or a frozen VM) would hold row locks its peers' claims skip forever.
        conn.execute(f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}")

    def _adapt(self, statement: str) -> str:
        return pyformat(statement)

    # -- transactions ----------------------------------------------------------
    def _retrying(self, attempt: Callable[[], T]) -> T:
        deadline = time.monotonic() + self.retry_for
        pause = 0.05
        while True:
            try:
                return attempt()
            except PoolClosed as exc:  # an OperationalError, but nothing will reopen it
                raise StoreClosed(f"the PostgreSQL store {self!r} is closed") from exc
            except psycopg.DataError as exc:  # the data, not the database: retrying won't help
                raise ValueError(f"PostgreSQL refused the data: {exc}") from exc
            except _TRANSIENT as exc:
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"PostgreSQL at {redact(self.url)} unavailable: {exc}"
                    ) from exc
                log.warning("PostgreSQL transient failure, retrying: %s", exc)
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL at {redact(self.url)} failed: {exc}") from exc

    def transact(self, work: Callable[[Transaction], T]) -> T:
        def attempt() -> T:
            with self._pool.connection() as conn, conn.transaction():
                return work(conn)

        return self._retrying(attempt)

    def renew_leases(self, owner: str, lease: float, run_ids: Sequence[str]) -> int:
        """On the heartbeat's own connection, failing fast: the heartbeat retries each tick,
        so a renewal never waits behind the pool or its backoff. Rows another transaction
        holds at that moment (a batch writing them) are passed over, not waited for: a
        renewal waiting on a batch that waits on it would be a deadlock; the next tick,
        a third of a lease later, renews them."""
        sql = self.inline(
            "UPDATE runs SET lease_until = durably_now() + ? WHERE run_id IN ("
            "SELECT run_id FROM runs WHERE owner = ? AND run_id = ANY(?) FOR UPDATE SKIP LOCKED)"
        )
        touch = self.sql("touch_worker")
        with self._heartbeat_lock:
            try:
                if self._heartbeat is None or self._heartbeat.closed:
                    self._heartbeat = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
                    self._configure(self._heartbeat)
                with self._heartbeat.transaction():
                    self._heartbeat.execute(touch, (owner,))
                    return self._heartbeat.execute(sql, (lease, owner, list(run_ids))).rowcount
            except psycopg.Error as exc:
                if self._heartbeat is not None:
                    self._heartbeat.close()
                raise StoreError(f"renewing leases on {redact(self.url)} failed: {exc}") from exc

    def _read(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        def attempt() -> list[Any]:
            with self._pool.connection() as conn:
                return conn.execute(statement, params).fetchall()

        return self._retrying(attempt)

    def migrate(self, target: int | None = None) -> None:
        """Bring the schema to version ``target`` (default: the newest).

        A current schema is only read: no DDL, no lock on ``runs`` (a trigger
        recreated at every start would take an ACCESS EXCLUSIVE lock on it). Safe
        when many processes start at once: they queue on an advisory lock, one
        applies, the others find it done.
        """
        if versions.plan(self._retrying(self._read_version), target) is None:
            return

        def apply(tx: Transaction) -> None:
            conn: psycopg.Connection[Any] = tx  # type: ignore[assignment]
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
            todo = versions.plan((row[0] if row else None) or 0, target)
            if todo is None:
                return  # another process migrated while this one waited
            for script, done in versions.scripts("postgresql", todo):
                if script.strip():
                    conn.execute(self._dialect(script).encode())  # statements, no parameters
                for version in done:
                    conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))

        self.transact(apply)

    def schema_version(self) -> int:
        return self._retrying(self._read_version)

    def _read_version(self) -> int:
        with self._pool.connection() as conn:
            table = f"{self.schema}.schema_version"
            found = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
            if found is None or found[0] is None:
                return 0
            row = conn.execute(f"SELECT MAX(version) FROM {table}").fetchone()
            return int((row[0] if row else None) or 0)

    def _dialect(self, script: str) -> str:
        return (
            script.replace("{without_rowid}", "")
            .replace("{serial}", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
            .replace("{channel}", self.channel)
        )

    def vacuum(self, full: bool = False) -> None:
        """``full``: VACUUM ANALYZE durably's tables (outside a transaction, as PostgreSQL
        needs); otherwise nothing: autovacuum reclaims space as rows go."""
        if not full:
            return

        def attempt() -> None:
            with self._pool.connection() as conn:
                for table in ("runs", "journal", "signals", "events", "history"):
                    conn.execute(f"VACUUM ANALYZE {self.schema}.{table}")

        self._retrying(attempt)

    # -- a test's virtual clock -------------------------------------------------------
    def follow_clock(self, offset: float | None) -> None:
        """Test mode: ``durably_now()`` of this schema becomes the database's clock plus
        ``offset`` (kept in a table, so jumps are one UPDATE); ``None`` restores it."""
        real = "extract(epoch from clock_timestamp())::double precision"
        table = f"{self.schema}.virtual_clock"
        if offset is None:
            body, script = real, f"DROP TABLE IF EXISTS {table}"
        else:
            body = f"{real} + COALESCE((SELECT seconds FROM {table}), 0)"
            script = (
                f"CREATE TABLE IF NOT EXISTS {table} (seconds DOUBLE PRECISION NOT NULL);"
                f"DELETE FROM {table}; INSERT INTO {table} VALUES ({float(offset)!r})"
            )

        def install(tx: Transaction) -> None:
            conn: psycopg.Connection[Any] = tx  # type: ignore[assignment]
            if offset is None:  # the function first: it reads the table
                conn.execute(self._clock_function(body).encode())
            conn.execute(script.encode())
            if offset is not None:
                conn.execute(self._clock_function(body).encode())

        self.transact(install)

    def drop_schema(self) -> None:
        """Drop this store's schema with everything in it (a test's own schema)."""
        self.transact(lambda tx: execute(tx, f"DROP SCHEMA IF EXISTS {self.schema} CASCADE"))

    def _clock_function(self, body: str) -> str:
        return (
            f"CREATE OR REPLACE FUNCTION {self.schema}.durably_now() RETURNS double precision"
            f" LANGUAGE sql VOLATILE AS $$ SELECT {body} $$"
        )

    def _move_clock(self, tx: Transaction, seconds: float) -> None:
        if self._follows_clock(tx):
            moved = f"UPDATE {self.schema}.virtual_clock SET seconds = seconds + %s"
            execute(tx, moved, (seconds,))

    def _follows_clock(self, tx: Transaction) -> bool:
        found = execute(tx, "SELECT to_regclass(%s)", (f"{self.schema}.virtual_clock",))
        return found.fetchone()[0] is not None

    # -- notifications ---------------------------------------------------------------
    def announce_schedules(self, tx: Transaction) -> None:
        execute(tx, "SELECT pg_notify(%s, 'schedules')", (self.channel,))

    def listen(
        self,
        on_ready: Callable[[], None],
        on_done: Callable[[str], None],
        on_schedules: Callable[[], None] | None = None,
    ) -> Callable[[], None]:
        """Call back on runnable and finished runs, and changed schedules, until the
        returned function is called."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                try:
                    with psycopg.connect(self.url, autocommit=True) as conn:
                        conn.execute(f"LISTEN {self.channel}")
                        on_ready()  # anything announced while we were not listening
                        while not stop.is_set():
                            for note in conn.notifies(timeout=0.5):
                                if note.payload == "ready":
                                    on_ready()
                                elif note.payload.startswith("done:"):
                                    on_done(note.payload[5:])
                                elif note.payload == "schedules" and on_schedules:
                                    on_schedules()
                except psycopg.Error as exc:
                    log.warning("LISTEN connection lost (%s); reconnecting", exc)
                    stop.wait(0.5)

        threading.Thread(target=loop, name="durably-listen", daemon=True).start()
        return stop.set

    def close(self) -> None:
        with self._heartbeat_lock:
            if self._heartbeat is not None:
                self._heartbeat.close()
        self._pool.close()
