"""docs/guarantees.md, battery item 8 (SQLite faults): a read-only, corrupt, foreign or full
database gives a typed :class:`durably.StoreError` that says what is wrong, and leaves the
file sound (``PRAGMA integrity_check`` is ok) with nothing lost.

A full disk is simulated with SQLite's ``PRAGMA max_page_count`` (the database
cannot grow past it and writes fail with SQLITE_FULL, exactly as on a full
disk), set by a store subclass on each of its connections. No filesystem is
filled and nothing on the machine is touched.
"""

from __future__ import annotations

import os
import random
import sqlite3
import stat
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import durably
from tests.acceptance import app
from tests.acceptance.effects import (
    STARTED,
    exactly_once,
    read_effects,
)
from tests.acceptance.harness import (
    assert_clean_exit,
    integrity_check,
    run_app,
    without_file_override,
)

RUN = "faults-run"


@pytest.fixture
def effect_log(tmp_path: Path) -> Iterator[Path]:
    """Record step executions of in-process engines too."""
    path = tmp_path / "effects.log"
    app.effect_log = str(path)
    try:
        yield path
    finally:
        app.effect_log = None


def _make_db_with_a_run(workdir: Path) -> tuple[Path, list[int]]:
    db, effects = workdir / "durably.db", workdir / "effects.log"
    result = run_app(["--db", str(db), "--effects", str(effects), "run", "--run-id", RUN])
    assert_clean_exit(result)
    return db, result.json()["output"]


def _snapshot(paths: list[Path]) -> dict[str, bytes | None]:
    return {p.name: p.read_bytes() if p.exists() else None for p in paths}


def _assert_run_intact(db: Path, output: list[int]) -> None:
    """The database is sound, still holds the run, and still works."""
    assert integrity_check(db) == "ok"
    with durably.Engine(str(db)) as engine:
        run = engine.get_run(RUN)
        assert run.status is durably.RunStatus.COMPLETED
        assert run.output == output
        assert [s.name for s in engine.steps(RUN)] == list(app.STEP_NAMES)
        handle = engine.with_options(run_id="after-fault").start_workflow(app.sync5, "after", 3)
        assert handle.result(timeout=10) == app.expected_output(3)
    assert integrity_check(db) == "ok"


# -- read-only --------------------------------------------------------------------
@pytest.mark.parametrize("what", ["file", "wal-file", "directory"])
def test_read_only_database(tmp_path: Path, what: str) -> None:
    """A database that cannot be written: StoreError naming the file, nothing changed."""
    workdir = tmp_path / "data"
    workdir.mkdir()
    db, output = _make_db_with_a_run(workdir)
    wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
    if os.geteuid() == 0 and not without_file_override():
        pytest.skip("running as root without setpriv: file modes cannot be enforced")
    # Everything goes into the main file first, so that closing the last connection
    # later has nothing to copy into it. A connection held open keeps the -wal and
    # -shm files in place (the last one to close deletes them); for the directory
    # case there must be none for SQLite to reuse.
    keeper = sqlite3.connect(db)
    keeper.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if what == "directory":
        keeper.close()
        assert not wal.exists() and not shm.exists()
    else:
        keeper.execute("SELECT COUNT(*) FROM runs").fetchall()
        assert wal.exists() and shm.exists()
    files = [db, wal]  # the data (the -shm is an index readers may write into)
    before = _snapshot(files)
    targets = {"file": [db, wal, shm], "wal-file": [wal], "directory": [workdir]}[what]
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in targets}
    for path in modes:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        probe = run_app(["--db", str(db), "probe", "--run-id", RUN], prefix=without_file_override())
        after = _snapshot(files)
    finally:
        for path, mode in modes.items():
            path.chmod(mode)
        keeper.close()
    assert probe.returncode == 0, probe.describe()
    report = probe.json()
    assert report["error_type"] == "StoreError", f"expected a StoreError: {report}"
    assert report["stage"] in ("open", "write"), report
    message = report["message"]
    assert str(db.name) in message, f"the error should name the file: {message}"
    assert any(w in message for w in ("read-only", "readonly", "Permission denied")), message
    assert after == before, "a file of the database was modified"
    _assert_run_intact(db, output)


# -- corrupt or foreign files ---------------------------------------------------------
def _garbage(path: Path, data: bytes) -> bytes:
    path.write_bytes(data)
    return data


def _corruptions(good: bytes) -> dict[str, bytes]:
    rnd = random.Random(8)
    return {
        "random-bytes": rnd.randbytes(64 * 1024),
        "text": b"this is not a database\n" * 200,
        "bad-header": rnd.randbytes(100) + good[100:],
        "garbage-pages": good[:4096] + rnd.randbytes(len(good) - 4096),
        "truncated": good[: len(good) // 3],
    }


@pytest.mark.parametrize(
    "kind", ["random-bytes", "text", "bad-header", "garbage-pages", "truncated"]
)
def test_corrupt_file_is_a_store_error_at_open(tmp_path: Path, kind: str) -> None:
    """A corrupt file: StoreError from ``Engine(path)``, and the file is left as it was."""
    good_db, _ = _make_db_with_a_run(tmp_path)
    conn = sqlite3.connect(good_db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file
    conn.close()
    bad = tmp_path / "corrupt.db"
    data = _garbage(bad, _corruptions(good_db.read_bytes())[kind])
    with pytest.raises(durably.StoreError) as caught:
        durably.Engine(str(bad))
    message = str(caught.value)
    assert "corrupt.db" in message and "corrupt" in message, message
    assert bad.read_bytes() == data, "durably wrote into a corrupt file"


def test_foreign_sqlite_file_is_left_alone(tmp_path: Path) -> None:
    """Another application's database with a clashing table: StoreError, nothing changed."""
    db = tmp_path / "other.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE runs (x INTEGER)")
    conn.execute("INSERT INTO runs VALUES (42)")
    conn.commit()
    conn.close()
    with pytest.raises(durably.StoreError) as caught:
        durably.Engine(str(db))
    assert "other.db" in str(caught.value)
    conn = sqlite3.connect(db)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables == {"runs"}, "a failed migration must leave no half schema"
        assert conn.execute("SELECT x FROM runs").fetchall() == [(42,)]
    finally:
        conn.close()
    assert integrity_check(db) == "ok"


# -- a full disk ----------------------------------------------------------------------
class CappedStore(durably.SQLiteStore):
    """A SQLite store whose file cannot grow past ``max_pages`` pages (SQLITE_FULL)."""

    def __init__(self, path: str, max_pages: int) -> None:
        self.max_pages = max_pages
        self.connections: list[sqlite3.Connection] = []
        super().__init__(path)

    def _connect(self) -> sqlite3.Connection:
        conn = super()._connect()
        conn.execute(f"PRAGMA max_page_count = {self.max_pages}")
        self.connections.append(conn)
        return conn

    def free_space(self) -> None:
        """The disk has room again (on every connection this store opened)."""
        self.max_pages = 1_000_000
        for conn in self.connections:
            conn.execute(f"PRAGMA max_page_count = {self.max_pages}")


PAD = "x" * 3000  # a large argument, so a few runs fill the capped file
MAX_PAGES = 60


def _fill(engine: durably.Engine) -> tuple[list[str], durably.StoreError]:
    """Start runs until the database is full; return those started and the error."""
    started: list[str] = []
    for n in range(10_000):
        run_id = f"fill-{n}"
        try:
            engine.with_options(run_id=run_id).start_workflow(app.sync3, run_id, 1, PAD)
        except durably.StoreError as exc:
            return started, exc
        started.append(run_id)
    raise AssertionError("the capped database never filled up")


def _statuses(engine: durably.Engine, run_ids: list[str]) -> dict[str, str]:
    return {r: str(engine.get_run(r).status) for r in run_ids}


def test_full_disk_at_start_is_a_store_error_and_loses_nothing(
    tmp_path: Path, effect_log: Path
) -> None:
    """Starting a run on a full database: StoreError; every run started before it
    completes once there is room again, each step exactly once; the file is sound."""
    db = tmp_path / "durably.db"
    engine = durably.Engine(CappedStore(str(db), MAX_PAGES))  # not launched: nothing runs
    try:
        started, error = _fill(engine)
        assert started, "the capped database could not hold a single run"
        assert "full" in str(error) and "durably.db" in str(error), str(error)
        with pytest.raises(durably.RunNotFound):
            engine.get_run(f"fill-{len(started)}")  # the failed start left no row behind
    finally:
        engine.close()
    assert integrity_check(db) == "ok"
    with durably.Engine(str(db), poll_interval=0.1) as engine:
        for run_id in started:
            assert engine.handle(run_id).result(timeout=30) == app.expected_output(1, 3)
    assert not exactly_once(read_effects(effect_log), app.THREE_STEP_NAMES)
    assert integrity_check(db) == "ok"


def test_runs_hit_by_a_full_disk_resume_once_there_is_room(
    tmp_path: Path, effect_log: Path
) -> None:
    """Checkpoints that fail because the disk is full must not strand their runs.

    The database fills up while runs execute, so their checkpoint (and then
    their final) writes fail. Once space is freed, the same live engine must
    finish every run whose start returned (G1), within a few leases, without
    a restart. Each step may have run twice at most: once before its failed
    checkpoint (the G2 window) and once after.
    """
    db = tmp_path / "durably.db"
    store = CappedStore(str(db), MAX_PAGES)
    engine = durably.Engine(store, lease=1, poll_interval=0.1)
    try:
        started, _ = _fill(engine)
        engine.launch()
        time.sleep(2)  # every run executes; those that cannot checkpoint are stuck
        assert integrity_check(db) == "ok"
        stuck_before = [r for r, s in _statuses(engine, started).items() if s != "completed"]
        assert stuck_before, "the scenario must leave some runs unable to checkpoint"
        store.free_space()
        deadline = time.monotonic() + 15  # many leases and polls
        while time.monotonic() < deadline:
            statuses = _statuses(engine, started)
            if all(s == "completed" for s in statuses.values()):
                break
            time.sleep(0.2)
        stuck = {r: s for r, s in statuses.items() if s != "completed"}
        journals = {r: [(e.name, e.status) for e in engine.steps(r)] for r in stuck}
        assert not stuck, (
            f"{len(stuck)} run(s) still not completed 15 s after the disk had room again, "
            f"although their engine is alive: {stuck}; journals: {journals}"
        )
    finally:
        engine.close()
    runs = Counter((e.run, e.step) for e in read_effects(effect_log) if e.step != STARTED)
    wrong = {
        (run_id, step): runs[run_id, step]
        for run_id in started
        for step in app.THREE_STEP_NAMES
        if not 1 <= runs[run_id, step] <= 2
    }
    assert not wrong, f"steps run other than once or twice: {wrong}"
    assert integrity_check(db) == "ok"
