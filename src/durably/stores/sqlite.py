"""SQLite dialect: connection setup, the clock, and error classification.

One file may be shared by several processes on one host: WAL mode, writers take
the lock up front with ``BEGIN IMMEDIATE``, and a busy database is waited on and
retried here, so no "database is locked" ever reaches user code.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

from durably.clock import SYSTEM, Clock
from durably.errors import StoreClosed, StoreError
from durably.stores.base import Transaction
from durably.stores.sql import schema
from durably.stores.sql.store import SqlStore

T = TypeVar("T")
log = logging.getLogger("durably.store")

Synchronous = Literal["normal", "full"]
_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
MMAP_SIZE = 256 * 1024 * 1024
CHECKPOINT_INTERVAL = 0.2
WAL_PAGES = 4000  # about 16 MB of WAL before the writer checkpoints itself


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _BUSY
    return "locked" in str(exc) or "busy" in str(exc)


class SQLiteStore(SqlStore):
    """A store in one SQLite file (or in memory, for tests).

    Args:
        path: the database file, created with mode 0600 if missing; ``":memory:"``
            for a private in-memory database.
        synchronous: ``"normal"`` survives a process crash; ``"full"`` also
            survives power loss (one fsync per commit).
        busy_timeout: seconds SQLite waits for another writer before retrying.
        migrate: bring the schema up to date now (off only to test migrations).
        clock: the store's only source of "now" (``durably_now()`` in its SQL).
    """

    commits_on_loop = True

    def __init__(
        self,
        path: str = "durably.db",
        *,
        synchronous: Synchronous = "normal",
        busy_timeout: float = 5.0,
        migrate: bool = True,
        clock: Clock = SYSTEM,
    ) -> None:
        if synchronous not in ("normal", "full"):
            raise ValueError(f"synchronous must be 'normal' or 'full', not {synchronous!r}")
        self.clock = clock
        self._prepare()
        self.path = path
        self.synchronous = synchronous
        self._busy_ms = int(busy_timeout * 1000)
        self._memory = path == ":memory:"
        self._lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._closed = threading.Event()
        self._refusing = False
        if not self._memory:
            self._create_private(path)
        self._conn = self._connect()
        if migrate:
            self.migrate()
        if not self._memory:
            # Checkpoints copy the WAL into the database file. A thread of their own does
            # the bulk beside the writer; under steady writes it can never catch up with
            # the newest frames, so the writer still checkpoints past WAL_PAGES (cheap:
            # little is left to copy) and the WAL restarts instead of growing forever.
            self._conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_PAGES}")
            self._conn.execute(f"PRAGMA journal_size_limit = {WAL_PAGES * 4096 * 2}")
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="durably-checkpoint", daemon=True
            )
            self._checkpointer.start()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    @staticmethod
    def _create_private(path: str) -> None:
        try:
            os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        except OSError as exc:
            raise StoreError(f"cannot open SQLite database {path!r}: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        def attempt() -> sqlite3.Connection:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=self._busy_ms / 1000,
            )
            try:
                conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
                if not self._memory:
                    # Switching a new file to WAL needs it alone, without the busy
                    # handler: processes opening it together retry here.
                    conn.execute("PRAGMA journal_mode = WAL")
                conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
                conn.execute(f"PRAGMA mmap_size = {MMAP_SIZE}")
                # Workflow patterns match case as on PostgreSQL ('billing.*' is not 'Billing.x').
                conn.execute("PRAGMA case_sensitive_like = ON")
                # The store's clock, which every statement reads as durably_now().
                conn.create_function("durably_now", 0, self.clock.time)
            except BaseException:
                conn.close()
                raise
            return conn

        return self._retrying(attempt)

    def _classify(self, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        if isinstance(exc, sqlite3.DatabaseError) and (
            "not a database" in text or "malformed" in text
        ):
            hint = "the file is corrupt or not a durably database"
        elif "readonly" in text or "read-only" in text:
            hint = "the file or its directory is read-only"
        elif "full" in text:
            hint = "the disk is full"
        else:
            hint = "the database failed"
        return StoreError(f"SQLite database {self.path!r}: {hint} ({text})")

    # -- transactions ----------------------------------------------------------
    def _retrying(self, attempt: Callable[[], T]) -> T:
        """Run ``attempt`` until SQLite is not busy; other failures become StoreError."""
        tries = 0
        while True:
            try:
                return attempt()
            except sqlite3.Error as exc:
                if not _is_busy(exc):
                    raise self._classify(exc) from exc
                tries += 1
                if tries % 10 == 0:
                    log.warning("SQLite database %s busy; retrying (%d)", self.path, tries)
                time.sleep(min(0.1, 0.001 * tries))

    def transact(self, work: Callable[[Transaction], T]) -> T:
        def attempt() -> T:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

        with self._lock:
            self._check_open()
            return self._retrying(attempt)

    def _check_open(self) -> None:
        if self._closed.is_set() or self._refusing:
            raise StoreClosed(f"the SQLite store {self.path!r} is closed")

    def refuse(self) -> None:
        """From now on refuse every operation as a closed store does, without closing the
        connections under the threads using them (a crash simulated in process)."""
        self._refusing = True

    def _reader(self) -> sqlite3.Connection:
        if self._memory:
            return self._conn
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._readers.append(conn)
        return conn

    def _read(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        def attempt() -> list[Any]:
            self._check_open()
            if self._memory:
                with self._lock:
                    return self._conn.execute(statement, params).fetchall()
            return self._reader().execute(statement, params).fetchall()

        return self._retrying(attempt)

    def now(self) -> float:
        return self.clock.time()

    def vacuum(self, full: bool = False) -> None:
        """Hand the pages of deleted rows back to the file system. ``full`` rewrites the
        file (VACUUM, which also switches an older file to incremental auto-vacuum);
        otherwise only free pages are given back, and only by incremental files."""

        def attempt() -> None:
            self._check_open()
            with self._lock:
                if full:
                    self._conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
                    self._conn.execute("VACUUM")
                elif self._conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
                    self._conn.execute("PRAGMA incremental_vacuum")

        self._retrying(attempt)

    def migrate(self, target: int | None = None) -> None:
        """Bring the schema to version ``target`` (default: the newest).

        A current schema is only read (no write lock). Safe when many processes start
        at once: one applies, the others wait for its lock and find it done.
        """
        current = self._retrying(lambda: self._version(self._reader()))
        if schema.plan(current, target) is None:
            return
        if current == 0:  # before the first table: new files give deleted pages back
            self._retrying(lambda: self._conn.execute("PRAGMA auto_vacuum = INCREMENTAL"))

        def apply(tx: Transaction) -> None:
            conn: sqlite3.Connection = tx  # type: ignore[assignment]
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            versions = schema.plan(self._version(conn), target)
            if versions is None:
                return  # another process migrated while this one waited
            for script, done in schema.scripts("sqlite", versions):
                for statement in schema.statements(_dialect(script)):
                    conn.execute(statement)
                conn.executemany(
                    "INSERT INTO schema_version (version) VALUES (?)", [(v,) for v in done]
                )

        self.transact(apply)

    def schema_version(self) -> int:
        return self._retrying(lambda: self._version(self._reader()))

    @staticmethod
    def _version(conn: sqlite3.Connection) -> int:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if not exists:
            return 0
        return int(conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0)

    def _checkpoint_loop(self) -> None:
        conn = self._connect()
        try:
            while not self._closed.wait(CHECKPOINT_INTERVAL):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:
                    if not _is_busy(exc):
                        log.warning("WAL checkpoint of %s failed: %s", self.path, exc)
        finally:
            conn.close()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if not self._memory:
            self._checkpointer.join(timeout=5)  # its connection must close for the WAL to go
        with self._lock:
            for conn in [*self._readers, self._conn]:
                conn.close()
            self._readers.clear()


def _dialect(script: str) -> str:
    # The journal is read and written by its key only: cluster it by that key.
    script = script.replace("{without_rowid}", " WITHOUT ROWID")
    return script.replace("{serial}", "INTEGER PRIMARY KEY AUTOINCREMENT")
