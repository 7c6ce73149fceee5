"""The worker app of the PostgreSQL acceptance tests (``tests/acceptance/test_pg_*.py``).

Workers run it as ``python -m durably.cli worker --app tests.acceptance.pg_app:engine``;
the race test also runs it as a script (``python -m tests.acceptance.pg_app race ...``).
Everything is configured by environment variables (see :mod:`tests.acceptance.pg_harness`):

* ``PGT_URL``: the store URL, with ``?schema=`` (one schema per test).
* ``PGT_EFFECTS``: the effect log; step bodies append one line per start and end.
* ``PGT_LEASE``, ``PGT_POLL``, ``PGT_GRACE``: engine lease, poll interval, shutdown grace.
* ``PGT_HOST``: a fake host name for this worker's lease owner id. Workers with
  different names look like processes on different machines to each other, so a
  dead one is recovered by lease expiry only, never by the same-host pid check.
* ``PGT_SKEW``: seconds added to this process's wall clock (``time.time``), as on
  a machine whose clock is wrong. The effect log keeps the true time.

Effect log lines: ``<unix time> <pid> <start|end> <run tag> <step> <token>``. Each
body execution draws a fresh token and returns it, so the token in a committed
checkpoint names exactly the execution that committed.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import json
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import durably
import durably.worker.claimer
from tests.acceptance import effects  # before the clock is skewed: its log keeps true time

_true_time = time.time  # the effect log's clock, immune to PGT_SKEW

SKEW = float(os.environ.get("PGT_SKEW", "0") or 0)
if SKEW:
    time.time = lambda: _true_time() + SKEW  # durably reads time.time at each call

if os.environ.get("PGT_HOST"):
    durably.worker.claimer.HOST = os.environ["PGT_HOST"]  # read when an executor is launched

EFFECTS = os.environ.get("PGT_EFFECTS")
CHAIN_STEPS = 5  # the chain workflows run up to this many steps


def record(event: str, tag: str, step: str, token: str = "-") -> None:
    """Append one line to the effect log (see :mod:`tests.acceptance.effects`)."""
    effects.record(EFFECTS, event, tag, step, token)


def new_token() -> str:
    return f"{os.getpid()}-{uuid.uuid4().hex[:10]}"


# -- chains: N short steps ------------------------------------------------------------
def _chain_step(index: int) -> durably.Step[[str, int], str]:
    name = f"s{index}"

    @durably.step(name=f"pg.chain.{name}", retries=0)
    def body(tag: str, ms: int) -> str:
        token = new_token()
        record("start", tag, name, token)
        time.sleep(ms / 1000)
        record("end", tag, name, token)
        return token

    return body


def _chain_step_async(index: int) -> durably.Step[[str, int], Coroutine[Any, Any, str]]:
    name = f"s{index}"

    @durably.step(name=f"pg.chain_async.{name}", retries=0)
    async def body(tag: str, ms: int) -> str:
        token = new_token()
        record("start", tag, name, token)
        await asyncio.sleep(ms / 1000)
        record("end", tag, name, token)
        return token

    return body


CHAIN = [_chain_step(i) for i in range(1, CHAIN_STEPS + 1)]
CHAIN_ASYNC = [_chain_step_async(i) for i in range(1, CHAIN_STEPS + 1)]


@durably.workflow(name="pg.chain")
def chain(tag: str, delays_ms: list[int]) -> list[str]:
    """One step per delay (at most CHAIN_STEPS); returns the committed tokens."""
    return [CHAIN[i](tag, ms) for i, ms in enumerate(delays_ms)]


@durably.workflow(name="pg.chain_async")
async def chain_async(tag: str, delays_ms: list[int]) -> list[str]:
    return [await CHAIN_ASYNC[i](tag, ms) for i, ms in enumerate(delays_ms)]


# -- one long step, then short ones ---------------------------------------------------
@durably.step(name="pg.long.body", retries=0)
def long_body(tag: str, seconds: float) -> str:
    token = new_token()
    record("start", tag, "long", token)
    time.sleep(seconds)  # wall time: after a SIGSTOP it returns as soon as it is due
    record("end", tag, "long", token)
    return token


@durably.step(name="pg.long.after", retries=0)
def long_after(tag: str, index: int) -> str:
    token = new_token()
    record("start", tag, f"after{index}", token)
    record("end", tag, f"after{index}", token)
    return token


@durably.workflow(name="pg.long")
def long_run(tag: str, seconds: float, after: int = 1) -> list[str]:
    tokens = [long_body(tag, seconds)]
    return tokens + [long_after(tag, i) for i in range(1, after + 1)]


# -- heartbeat starvation -------------------------------------------------------------
@durably.step(name="pg.block_loop.body", retries=0)
async def blocking_body(tag: str, seconds: float) -> str:
    token = new_token()
    record("start", tag, "block", token)
    time.sleep(seconds)  # blocks the event loop every async run of the worker shares
    record("end", tag, "block", token)
    return token


@durably.step(name="pg.block_loop.after", retries=0)
async def blocking_after(tag: str) -> str:
    token = new_token()
    record("start", tag, "after", token)
    record("end", tag, "after", token)
    return token


@durably.workflow(name="pg.block_loop")
async def block_loop(tag: str, seconds: float) -> list[str]:
    return [await blocking_body(tag, seconds), await blocking_after(tag)]


@durably.step(name="pg.gil.body", retries=0)
def gil_body(tag: str, seconds: float) -> str:
    token = new_token()
    record("start", tag, "spin", token)
    end = time.monotonic() + seconds
    spins = 0
    while time.monotonic() < end:  # pure Python: holds the GIL but for switch intervals
        spins += 1
    record("end", tag, "spin", token)
    return token


@durably.workflow(name="pg.gil")
def gil(tag: str, seconds: float) -> list[str]:
    return [gil_body(tag, seconds), long_after(tag, 1)]


# -- timers under a skewed clock ------------------------------------------------------
@durably.workflow(name="pg.nap")
def nap(tag: str, seconds: float) -> list[str]:
    first = long_after(tag, 1)
    durably.sleep(seconds)
    return [first, long_after(tag, 2)]


# -- queues -----------------------------------------------------------------------------
CONCURRENT = durably.Queue("pg_conc", concurrency=3)
PARTITIONED = durably.Queue("pg_part", partition_concurrency=1)
RATED = durably.Queue("pg_rate", rate_limit=(5, "1s"))


@durably.step(name="pg.work.body", retries=0)
def work_body(tag: str, ms: int) -> str:
    token = new_token()
    record("start", tag, "work", token)
    time.sleep(ms / 1000)
    record("end", tag, "work", token)
    return token


@durably.workflow(name="pg.work")
def work(tag: str, ms: int) -> str:
    return work_body(tag, ms)


@durably.workflow(name="billing.invoice")
def invoice(tag: str, ms: int) -> str:
    return work_body(tag, ms)


# -- the engine the CLI loads -----------------------------------------------------------
def _engine() -> durably.Engine:
    return durably.Engine(
        os.environ.get("PGT_URL", "postgresql://postgres@127.0.0.1/test?schema=pgt_unset"),
        lease=float(os.environ.get("PGT_LEASE", "2")),
        poll_interval=float(os.environ.get("PGT_POLL", "0.2")),
        shutdown_grace=float(os.environ.get("PGT_GRACE", "10")),
    )


def _log_recoveries() -> None:
    """Show which mechanism recovered a dead worker's runs (pid check vs. lease expiry)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(created).6f %(name)s %(levelname)s %(message)s"))
    logger = logging.getLogger("durably.worker")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)


if os.environ.get("PGT_URL"):
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # a hung worker shows its stacks
    _log_recoveries()
    engine = _engine()


# -- script commands ------------------------------------------------------------------------
def _wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"barrier {path} never opened")
        time.sleep(0.001)


def cmd_race(args: argparse.Namespace) -> None:
    """Start the same run ids as the other racers, at the same moment, then wait for them."""
    launched = engine.launch() if args.execute else engine
    (Path(args.barrier).parent / f"ready-{os.getpid()}").touch()
    _wait_for(Path(args.barrier), 60)
    handles = [
        launched.with_options(run_id=run_id).start_workflow(chain, run_id, [5, 5, 5])
        for run_id in args.ids
    ]
    outputs = {h.run_id: h.result(timeout=args.timeout) for h in handles}
    engine.close()
    print(json.dumps({"pid": os.getpid(), "outputs": outputs}), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.acceptance.pg_app")
    sub = parser.add_subparsers(dest="command", required=True)
    race = sub.add_parser("race")
    race.add_argument("--barrier", required=True)
    race.add_argument("--execute", action="store_true", help="launch the executor first")
    race.add_argument("--timeout", type=float, default=30)
    race.add_argument("ids", nargs="+")
    args = parser.parse_args(argv)
    commands: dict[str, Callable[[argparse.Namespace], None]] = {"race": cmd_race}
    commands[args.command](args)


if __name__ == "__main__":
    main()
