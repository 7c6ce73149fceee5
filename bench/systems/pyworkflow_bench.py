"""pyworkflow-engine with its SQLite storage, local runtime (no Celery, no broker).

The local runtime runs `await start(...)` to completion in the calling event loop,
so concurrent workflows are concurrent `start` coroutines. Automatic recovery after
worker loss is a Celery-runtime feature; locally, W3 resumes the interrupted run
with the public `pyworkflow.resume(run_id)`, found by its idempotency key.

`--mode default` uses the default DISTRIBUTED run strategy (a STEP_STARTED event
before each step); `--mode one-thread` passes `WorkflowRunStrategy.ONE_THREAD`,
which skips that event.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import common
import pyworkflow
from pyworkflow import WorkflowRunStrategy, resume, step, workflow
from pyworkflow import start as pyworkflow_start
from pyworkflow.storage.sqlite import SQLiteStorageBackend

ROLE = "parent"
STRATEGY = WorkflowRunStrategy.DISTRIBUTED
WORKDIR = Path(".")


@step()
async def add_one(x: int) -> int:
    return x + 1


@workflow(name="bench.three", durable=True)
async def three(x: int) -> int:
    return await add_one(await add_one(await add_one(x)))


@workflow(name="bench.chain", durable=True)
async def chain(n: int) -> int:
    x = 0
    for _ in range(n):
        x = await add_one(x)
    return x


@step()
async def nap() -> None:
    await asyncio.sleep(common.W5_SLEEP)


@workflow(name="bench.nap", durable=True)
async def napper() -> None:
    await nap()


@step()
async def crash_step(n: int) -> int:
    common.w3_step_body(WORKDIR, ROLE, n)
    return n


@workflow(name="bench.five", durable=True)
async def five() -> int:
    for n in range(1, common.W3_STEPS + 1):
        await crash_step(n)
    return common.W3_STEPS


async def start(wf: Any, *args: Any, **kwargs: Any) -> str:
    return await pyworkflow_start(wf, *args, workflow_run_strategy=STRATEGY, **kwargs)


async def open_storage(workdir: Path) -> SQLiteStorageBackend:
    pyworkflow.configure_logging(level="WARNING")
    storage = SQLiteStorageBackend(str(workdir / "pyworkflow.db"))
    await storage.connect()
    pyworkflow.configure(default_runtime="local", default_durable=True, storage=storage)
    return storage


async def check_completed(storage: SQLiteStorageBackend, run_ids: list[str]) -> None:
    for run_id in run_ids:
        run = await storage.get_run(run_id)
        if run is None or run.status.value != "completed":
            await storage.disconnect()  # aiosqlite's thread would keep the process alive
            raise RuntimeError(f"run {run_id} is not completed: {run and run.status.value}")


async def w1_async(workdir: Path) -> float:
    storage = await open_storage(workdir)
    started = time.perf_counter()
    run_ids = await asyncio.gather(*(start(three, i) for i in range(common.W1_WORKFLOWS)))
    seconds = time.perf_counter() - started
    await check_completed(storage, run_ids)
    await storage.disconnect()
    return seconds


async def w2_async(workdir: Path) -> list[float]:
    storage = await open_storage(workdir)
    rounds, run_ids = [], []
    for _ in range(common.W2_ROUNDS):
        started = time.perf_counter()
        run_ids.append(await start(chain, common.W2_STEPS))
        rounds.append(time.perf_counter() - started)
    await check_completed(storage, run_ids)
    await storage.disconnect()
    return rounds


async def w5_async(workdir: Path) -> float:
    storage = await open_storage(workdir)
    started = time.perf_counter()
    run_ids = await asyncio.gather(*(start(napper) for _ in range(common.W5_WORKFLOWS)))
    seconds = time.perf_counter() - started
    await check_completed(storage, run_ids)
    await storage.disconnect()
    return seconds


async def w3_async(workdir: Path, role: str) -> float:
    started = time.perf_counter()
    storage = await open_storage(workdir)
    if role == "crash":
        await start(five, idempotency_key="w3")  # killed inside step 3
    run = await pyworkflow.get_workflow_run_by_idempotency_key("w3")
    assert run is not None, "the crashed run is not in storage"
    await resume(run.run_id)
    seconds = time.perf_counter() - started
    status = (await storage.get_run(run.run_id)).status.value
    await storage.disconnect()
    return seconds, status


def set_mode(mode: str) -> None:
    global STRATEGY
    if mode == "one-thread":
        STRATEGY = WorkflowRunStrategy.ONE_THREAD


def w1(args: Any) -> dict[str, Any]:
    set_mode(args.mode)
    seconds = asyncio.run(w1_async(args.dir))
    return {"seconds": seconds, "wf_per_s": common.W1_WORKFLOWS / seconds}


def w2(args: Any) -> dict[str, Any]:
    set_mode(args.mode)
    return common.w2_result(asyncio.run(w2_async(args.dir)))


def w5(args: Any) -> dict[str, Any]:
    set_mode(args.mode)
    return {"seconds": asyncio.run(w5_async(args.dir))}


def w3(args: Any) -> dict[str, Any]:
    global ROLE, WORKDIR
    ROLE, WORKDIR = args.role, args.dir
    set_mode(args.mode)
    seconds, status = asyncio.run(w3_async(args.dir, args.role))
    result = {"in_process_s": seconds, "recovery": "manual: pyworkflow.resume(run_id)"}
    if status != "completed":
        result["error"] = f"not recovered: run is {status} after resume"
    return result


if __name__ == "__main__":
    common.main(__file__, {"W1": w1, "W2": w2, "W3": w3, "W5": w5})
