"""``durably workflows|workers|config`` and ``durably db migrate|status|purge|vacuum``."""

from __future__ import annotations

import os
from typing import Any

import click

from durably.cli.output import STORE, USAGE, Failure, note, when
from durably.cli.session import Session, common, with_session
from durably.errors import StoreError
from durably.records import RunFilter, RunStatus, timestamp
from durably.retention import Retention
from durably.stores import open_store, sqlite_file
from durably.stores.base import Store, redact
from durably.stores.sql import schema

ENDED = [s.value for s in RunStatus if s.terminal]


@click.command()
@common
@with_session
def workflows(s: Session) -> None:
    """The workflows live workers execute, per version, with how many workers run each."""
    served: dict[tuple[str, str], dict[str, Any]] = {}
    for worker in s.engine().store.live_workers():
        for name in worker.workflows:
            version = worker.versions.get(name, "")
            entry = served.setdefault(
                (name, version),
                {"workflow": name, "version": version, "workers": 0, "queues": set()},
            )
            entry["workers"] += 1
            entry["queues"].update(worker.queues or ["*"])
    rows = [{**e, "queues": sorted(e["queues"])} for _, e in sorted(served.items())]
    columns = [
        ("WORKFLOW", lambda e: e["workflow"]),
        ("VERSION", lambda e: e["version"]),
        ("WORKERS", lambda e: e["workers"]),
        ("QUEUES", lambda e: ", ".join(e["queues"]).replace("*", "all")),
    ]
    s.output.records(rows, columns)
    if not rows:
        note("no live worker: start one with `durably worker --app module`")


@click.command()
@common
@with_session
def workers(s: Session) -> None:
    """The live workers: where they run, what they serve, how busy they are."""
    store = s.engine().store
    running, now = store.running_counts(), store.now()
    rows = [
        {
            "worker_id": w.worker_id,
            "host": w.host,
            "pid": w.pid,
            "queues": None if w.queues is None else list(w.queues),
            "patterns": None if w.patterns is None else list(w.patterns),
            "workflows": list(w.workflows),
            "concurrency": w.concurrency,
            "running": running.get(w.worker_id, 0),
            "heartbeat_age": round(max(0.0, now - w.seen_at), 1),
            "started_at": timestamp(w.started_at),
        }
        for w in store.live_workers()
    ]
    columns = [
        ("WORKER", lambda w: w["worker_id"]),
        ("HOST", lambda w: w["host"]),
        ("PID", lambda w: w["pid"]),
        ("QUEUES", lambda w: ", ".join(w["queues"] or ["all"])),
        ("WORKFLOWS", lambda w: ", ".join(w["patterns"] or ["all"])),
        ("CONCURRENCY", lambda w: w["concurrency"]),
        ("RUNNING", lambda w: w["running"]),
        ("HEARTBEAT", lambda w: f"{w['heartbeat_age']:g}s ago"),
        ("STARTED", lambda w: when(w["started_at"])),
    ]
    s.output.records(rows, columns)


@click.command()
@common
@with_session
def config(s: Session) -> None:
    """The effective configuration and where each value came from (passwords masked)."""
    shown = s.config.shown()
    if "store" not in shown:
        note("store: durably.db (the default)")
    if s.output.format in ("json", "jsonl"):
        data = {k: {"value": v.value, "source": v.source} for k, v in shown.items()}
        s.output.write_json({"file": str(s.config.file) if s.config.file else None, **data})
        return
    rows = [[key, _shown(v.value), v.source] for key, v in shown.items()]
    s.output.table(["KEY", "VALUE", "SOURCE"], rows)
    note(f"config file: {s.config.file or 'none found'}")


def _shown(value: Any) -> str:
    return ", ".join(value) if isinstance(value, tuple) else str(value)


@click.group()
@common
def db() -> None:
    """The database: its schema, its size, old runs."""


def _raw_store(s: Session, create: bool = False) -> Store:
    """The store as it is: no migration (``status`` reads the version it finds)."""
    spec = s.store_spec()
    path = sqlite_file(spec)
    if path and path != ":memory:" and not create and not os.path.exists(path):
        raise Failure(f"no database at {path}: give --store URL or set DURABLY_STORE", STORE)
    return open_store(spec, migrate=False)


@db.command()
@common
@with_session
def migrate(s: Session) -> None:
    """Bring the schema to this version of durably (creates the database if need be)."""
    store = _raw_store(s, create=True)
    try:
        before = store.schema_version()
        store.migrate()
        after = store.schema_version()
    finally:
        store.close()
    if s.output.format in ("json", "jsonl"):
        s.output.write_json({"from": before, "to": after, "latest": schema.latest()})
    elif before == after:
        s.output.out.write(f"the schema is current (version {after})\n")
    else:
        s.output.out.write(f"migrated the schema from version {before} to {after}\n")


@db.command()
@common
@with_session
def status(s: Session) -> None:
    """The schema's version, the runs per status, the file's size (SQLite)."""
    store = _raw_store(s)
    try:
        version, latest = store.schema_version(), schema.latest()
        statuses = RunStatus if version else ()  # a database never migrated has no runs
        counts = {st: store.count_runs(RunFilter(statuses=(RunStatus(st),))) for st in statuses}
    except StoreError as exc:
        raise Failure(f"reading {redact(s.store_spec())} failed: {exc}", STORE) from None
    finally:
        store.close()
    path = sqlite_file(s.store_spec())
    size = os.path.getsize(path) if path and os.path.exists(path) else None
    state = "current" if version == latest else "behind" if version < latest else "newer"
    data = {
        "store": repr(store),
        "schema_version": version,
        "latest_version": latest,
        "schema": state,
        "runs": {k.value: v for k, v in counts.items()},
        "size_bytes": size,
    }
    if s.output.format in ("json", "jsonl"):
        s.output.write_json(data)
        return
    hint = {"behind": " (run `durably db migrate`)", "newer": " (a newer durably wrote it)"}
    pairs = [
        ("store", data["store"]),
        ("schema", f"version {version} of {latest}: {state}{hint.get(state, '')}"),
        ("size", None if size is None else f"{size / 1e6:.1f} MB"),
        *[(f"{k.value} runs", str(v)) for k, v in counts.items()],
    ]
    s.output.fields(pairs)


@db.command()
@common
@click.option(
    "--older-than",
    required=True,
    metavar="DURATION",
    help="Runs that ended longer ago than this (30d).",
)
@click.option(
    "--status",
    "statuses",
    default=",".join(ENDED),
    show_default=True,
    help="Ended statuses to purge, comma-separated.",
)
@click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
@click.option("--yes", is_flag=True, help="Delete (required unless --dry-run).")
@click.option("--batch", type=click.IntRange(1, 100_000), default=None,
              help="Run trees per transaction (default 200).")  # fmt: skip
@with_session
def purge(
    s: Session, older_than: str, statuses: str, dry_run: bool, yes: bool, batch: int | None
) -> None:
    """Delete whole run trees that ended longer ago than --older-than; never a run that
    has not ended."""
    chosen = [x.strip() for x in statuses.split(",") if x.strip()]
    wrong = [x for x in chosen if x not in ENDED]
    if wrong or not chosen:
        raise click.BadParameter(
            f"{', '.join(wrong) or 'nothing'}: purge takes ended statuses ({', '.join(ENDED)})",
            param_hint="--status",
        )
    ages: dict[str, Any] = {st: (older_than if st in chosen else None) for st in ENDED}
    retention = Retention(**ages)
    engine = s.engine()
    if not dry_run and not yes and (count := engine.purge(retention, dry_run=True)):
        raise Failure(f"{count} run(s) would be deleted: add --yes (or --dry-run)", USAGE)
    count = engine.purge(retention, dry_run=dry_run, batch=batch)
    if s.output.format in ("json", "jsonl"):
        s.output.write_json({"dry_run": dry_run, "runs": count})
    else:
        s.output.out.write(f"{'would delete' if dry_run else 'deleted'} {count} run(s)\n")


@db.command()
@common
@click.option("--full", is_flag=True, help="Rewrite the whole file (SQLite VACUUM; PostgreSQL "
              "VACUUM ANALYZE): may take long, and locks the database meanwhile.")  # fmt: skip
@with_session
def vacuum(s: Session, full: bool) -> None:
    """Give the space of deleted runs back to the file system."""
    engine = s.engine()
    path = sqlite_file(s.store_spec())
    before = os.path.getsize(path) if path and os.path.exists(path) else None
    engine.store.vacuum(full=full)
    after = os.path.getsize(path) if path and os.path.exists(path) else None
    if s.output.format in ("json", "jsonl"):
        s.output.write_json({"full": full, "size_before": before, "size_after": after})
    elif before is not None and after is not None:
        s.output.out.write(f"vacuumed: {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB\n")
    else:
        s.output.out.write("vacuumed\n")
