"""docs/guarantees.md, battery item 7, second half, on PostgreSQL: a commit that succeeds
but reports an error to the caller, at each write site of a run's life.

The worker talks to the server through :class:`~tests.acceptance.pg_proxy.CommitAckDropper`,
which lets the server commit and then cuts the connection before the answer arrives.
durably sees a failed commit and retries the whole transaction (``_retrying``), which
already committed. Each retry must be idempotent: the run completes, promptly, and
every step body runs exactly once (no process died, so no re-run is allowed).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.acceptance.effects import (
    executions,
    read_effects,
)
from tests.acceptance.pg_harness import (
    REPO_ROOT,
    Schema,
    Worker,
    wait_until,
    worker_env,
)
from tests.acceptance.pg_proxy import CommitAckDropper
from tests.postgres import URL as POSTGRES_URL

LEASE, POLL = 2.0, 0.2
PROMPT = 8.0  # a run of a second or two must end well within this, fault or not


@pytest.fixture
def proxy() -> Iterator[CommitAckDropper]:
    parts = urlsplit(POSTGRES_URL)
    dropper = CommitAckDropper((parts.hostname or "127.0.0.1", parts.port or 5432))
    try:
        yield dropper
    finally:
        dropper.close()


def _database() -> str:
    return urlsplit(POSTGRES_URL).path.lstrip("/") or "postgres"


#: site -> (fragments of the SQL of its transaction, workflow, arguments, whether to aim
#: only once the run executes). psycopg sends the %s placeholders as $1, $2 ...
SITES: dict[str, tuple[tuple[str, ...], str, list[Any], bool]] = {
    # an empty claim writes nothing: aim at one that loaded a journal, so claimed a run
    "claim": (
        ("UPDATE runs SET owner =", "FROM journal WHERE run_id IN"),
        "pg.chain",
        [[30] * 3],
        False,
    ),
    "checkpoint": (("INSERT INTO journal",), "pg.chain", [[30, 30, 30]], False),
    "finish": (("continued_to =",), "pg.chain", [[30, 30, 30]], False),
    "progress": (("SET current_step =",), "pg.long", [1.0, 1], True),
    "lease-renewal": (("SET lease_until =",), "pg.long", [1.5, 1], True),
    "suspend-sleep": (("wake_pending = 0, owner = NULL",), "pg.nap", [1.2], False),
}


def _assert_exactly_once(schema: Schema, run_id: str) -> None:
    twice = {k: [x.pid for x in v] for k, v in executions(read_effects(schema.effects)).items()}
    twice = {k: v for k, v in twice.items() if len(v) != 1}
    assert not twice, f"step bodies re-ran although no process died: {twice}"
    run = schema.runs()[run_id]
    journal = schema.journal()[run_id]
    assert json.loads(run["output"]) == [
        json.loads(j[3] or "null") for j in journal if j[1] != "sleep"
    ]


@pytest.mark.parametrize("site", list(SITES))
def test_a_lost_commit_answer_is_retried_idempotently(
    site: str, schema: Schema, workers: list[Worker], proxy: CommitAckDropper
) -> None:
    fragments, workflow, args, when_running = SITES[site]
    worker = Worker(
        schema, name="proxied", lease=LEASE, poll=POLL, url=proxy.url(_database(), schema.name)
    ).wait_ready()
    workers.append(worker)
    with schema.client() as client:
        if not when_running:
            proxy.arm(*fragments)
        client.with_options(run_id=site).start_workflow(workflow, site, *args)
        if when_running:
            wait_until(lambda: read_effects(schema.effects), 10, "the run to execute")
            proxy.arm(*fragments)
        began = time.monotonic()
        try:
            client.handle(site).result(timeout=PROMPT)
        except TimeoutError:
            run = schema.runs()[site]
            raise AssertionError(
                f"the run did not end in {PROMPT:g}s after the answer to its {site} commit "
                f"was lost: status {run['status']}, owner {run['owner']}, epoch {run['epoch']} "
                f"(dropped: {[d.statements for d in proxy.dropped]})\n{worker.describe()}"
            ) from None
    assert proxy.dropped, f"no {site} commit went through the proxy"
    print(f"\n{site}: lost commit answer retried; run ended in {time.monotonic() - began:.2f}s")
    _assert_exactly_once(schema, site)


def test_a_lost_answer_to_a_fast_path_start_is_retried_idempotently(
    schema: Schema, proxy: CommitAckDropper
) -> None:
    """An executing engine creates the run already claimed by itself; the answer to that
    commit is lost and the create is retried (it finds the run it made)."""
    barrier = schema.workdir / "go"
    barrier.touch()
    env = worker_env(schema, lease=LEASE, poll=POLL, url=proxy.url(_database(), schema.name))
    proxy.arm("INSERT INTO runs")
    race = ["race", "--execute", "--barrier", str(barrier), "--timeout", str(PROMPT), "fast-0"]
    starter = subprocess.run(
        [sys.executable, "-m", "tests.acceptance.pg_app", *race],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=PROMPT + 20,
    )
    assert proxy.dropped, "the create's commit did not go through the proxy"
    run = schema.runs()["fast-0"]
    assert starter.returncode == 0, (
        f"the run did not end: status {run['status']}, owner {run['owner']}\n"
        f"{starter.stderr[-3000:]}"
    )
    _assert_exactly_once(schema, "fast-0")
