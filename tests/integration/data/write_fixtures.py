"""Writes the databases of tests/integration/test_upgrades.py, with an older durably.

Run it with the durably release whose databases the fixtures stand for (the
schema version is in the file names), never with the code under test:

    PYTHONPATH=<old checkout>/src python tests/integration/data/write_fixtures.py \
        --sqlite tests/integration/data/schema-v4.sqlite \
        --postgres postgresql://postgres@127.0.0.1/test \
        --dump tests/integration/data/schema-v4.postgresql.sql

It leaves runs in every state a deploy must carry over: sleeping, waiting for a
signal, mid-retry (a failed attempt recorded, the next one due later), a parent
waiting for its child, a signal sent before the run waits for it, and a run
that completed. The test then finishes them with the new code.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time

import durably

SCHEMA = "durably_fixture"  # the PostgreSQL schema of the dump, renamed by the test


@durably.step
def first(name: str) -> str:
    return f"first:{name}"


@durably.step(retries=2)
def flaky(name: str) -> str:
    raise durably.RetryableError("not yet", retry_after=2)  # the test's code succeeds


@durably.workflow(name="upgrade.sleeper")
def sleeper(name: str) -> str:
    a = first(name)
    durably.sleep("2s")
    return f"{a}|slept"


@durably.workflow(name="upgrade.waiter")
def waiter(name: str) -> str:
    a = first(name)
    got = durably.wait_for_signal("go")
    return f"{a}|{got}"


@durably.workflow(name="upgrade.retrier")
def retrier(name: str) -> str:
    return f"{first(name)}|{flaky(name)}"


@durably.workflow(name="upgrade.child")
def child(name: str) -> str:
    return f"child:{durably.wait_for_signal('go')}"


@durably.workflow(name="upgrade.parent")
def parent(name: str) -> str:
    handle = durably.start_child(child, name)
    return f"parent|{handle.result()}"


@durably.workflow(name="upgrade.done")
def done(name: str) -> str:
    return first(name)


def write(url: str) -> None:
    with durably.Engine(url, poll_interval=0.05) as engine:
        for wf in (sleeper, waiter, retrier, parent, done):
            engine.start_workflow(wf, wf.name, run_id=wf.name)
        engine.send_signal("upgrade.waiter", "early", "ignored-by-name")
        engine.handle("upgrade.done").result(timeout=10)
        deadline = time.monotonic() + 10
        want = {
            "upgrade.sleeper": "sleeping",
            "upgrade.waiter": "waiting",
            "upgrade.retrier": "pending",
            "upgrade.parent": "waiting",
        }
        while {k: engine.get_run(k).status.value for k in want} != want:
            assert time.monotonic() < deadline, {k: engine.get_run(k).status for k in want}
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sqlite")
    parser.add_argument("--postgres")
    parser.add_argument("--dump")
    args = parser.parse_args()
    if args.sqlite:
        if os.path.exists(args.sqlite):
            os.remove(args.sqlite)
        write(args.sqlite)
    if args.postgres:
        import psycopg

        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        write(f"{args.postgres}?schema={SCHEMA}")
        dump = subprocess.run(
            [
                "pg_dump",
                "--schema",
                SCHEMA,
                "--no-owner",
                "--no-privileges",
                "--inserts",
                args.postgres,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        with open(args.dump, "w") as out:  # without psql's meta-commands (\restrict ...)
            out.writelines(line for line in dump.splitlines(True) if not line.startswith("\\"))
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


if __name__ == "__main__":
    main()
