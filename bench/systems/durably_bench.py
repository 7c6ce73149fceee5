"""durably, embedded on SQLite, from this repository's src/ (run with its .venv python).

Modes: W1 and W5 `sync` (default) or `async` workflows and steps, each started in turn
from the main thread; W1 also `async-gather`, all starts issued at once from the
application's own event loop (as the pyworkflow harness starts its runs); W2 `default`
(`synchronous="normal"`) or `full` (`synchronous="full"`, power-loss safe). W3: a
fresh `Engine` on the same file resumes the interrupted run by itself.

W1 and W2 modes may end in `+logs`, `+metrics` or `+tracing`: the workload with that
observability on, paired in the process with the same workload without it (see
observing.py).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

import common
import observing

import durably

ROLE = "parent"
WORKDIR = Path(".")


@durably.step
def add_one(x: int) -> int:
    return x + 1


@durably.step
async def add_one_async(x: int) -> int:
    return x + 1


@durably.workflow(name="bench.three")
def three(x: int) -> int:
    return add_one(add_one(add_one(x)))


@durably.workflow(name="bench.three.async")
async def three_async(x: int) -> int:
    return await add_one_async(await add_one_async(await add_one_async(x)))


@durably.workflow(name="bench.chain")
def chain(n: int) -> int:
    x = 0
    for _ in range(n):
        x = add_one(x)
    return x


@durably.step
def nap() -> None:
    time.sleep(common.W5_SLEEP)


@durably.step
async def nap_async() -> None:
    await asyncio.sleep(common.W5_SLEEP)


@durably.workflow(name="bench.nap")
def napper() -> None:
    nap()


@durably.workflow(name="bench.nap.async")
async def napper_async() -> None:
    await nap_async()


@durably.step
def crash_step(n: int) -> int:
    common.w3_step_body(WORKDIR, ROLE, n)
    return n


@durably.workflow(name="bench.five")
def five() -> int:
    for n in range(1, common.W3_STEPS + 1):
        crash_step(n)
    return common.W3_STEPS


def engine(args: Any, synchronous: str = "normal") -> durably.Engine:
    return durably.Engine(str(args.dir / "durably.db"), synchronous=synchronous)  # defaults


def observed(args: Any, segment: Any) -> dict[str, Any]:
    """A mode ``<mode>+<what>``: plain and observed segments paired in this process."""
    what = args.mode.partition("+")[2]
    times = observing.paired(args.workload, what, args.dir, lambda: engine(args), segment)
    return observing.result(args.workload, *times)


async def run_gathered(args: Any, count: int) -> float:
    with engine(args) as eng:
        started = time.perf_counter()
        starts = [eng.start_workflow_async(three_async, 1) for _ in range(count)]
        handles = await asyncio.gather(*starts)
        await asyncio.gather(*(handle.result_async(timeout=600) for handle in handles))
        return time.perf_counter() - started


def run_many(args: Any, wf: Any, count: int, *wf_args: Any) -> float:
    with engine(args) as eng:
        started = time.perf_counter()
        started_and_awaited(eng, count, wf, *wf_args)
        return time.perf_counter() - started


def started_and_awaited(eng: durably.Engine, count: int, wf: Any, *wf_args: Any) -> None:
    handles = [eng.start_workflow(wf, *wf_args) for _ in range(count)]
    for handle in handles:
        handle.result(timeout=600)


def w1(args: Any) -> dict[str, Any]:
    mode = args.mode
    if "+" in mode:
        return observed(args, lambda eng: started_and_awaited(eng, observing.W1_SEGMENT, three, 1))
    if mode == "async-gather":
        seconds = asyncio.run(run_gathered(args, common.W1_WORKFLOWS))
    else:
        wf = three_async if mode == "async" else three
        seconds = run_many(args, wf, common.W1_WORKFLOWS, 1)
    return {"seconds": seconds, "wf_per_s": common.W1_WORKFLOWS / seconds}


def w2(args: Any) -> dict[str, Any]:
    if "+" in args.mode:
        return observed(args, lambda eng: eng.start_workflow(chain, common.W2_STEPS).result(60))
    with engine(args, "full" if args.mode.startswith("full") else "normal") as eng:
        rounds = [
            common.timed(lambda: eng.start_workflow(chain, common.W2_STEPS).result(60))
            for _ in range(common.W2_ROUNDS)
        ]
    return common.w2_result(rounds)


def w5(args: Any) -> dict[str, Any]:
    wf = napper_async if args.mode == "async" else napper
    return {"seconds": run_many(args, wf, common.W5_WORKFLOWS)}


def w3(args: Any) -> dict[str, Any]:
    global ROLE, WORKDIR
    ROLE, WORKDIR = args.role, args.dir
    started = time.perf_counter()
    with engine(args) as eng:  # in the recover role, this resumes the run by itself
        if args.role == "crash":
            eng.with_options(run_id="w3").start_workflow(five)
            time.sleep(common.W3_HANG)  # killed before this ends
        common.wait_until(
            lambda: eng.get_run("w3").status == durably.RunStatus.COMPLETED, 110, "recovery"
        )
        seconds = time.perf_counter() - started
    return {"in_process_s": seconds, "recovery": "automatic when an Engine opens the file"}


if __name__ == "__main__":
    common.main(__file__, {"W1": w1, "W2": w2, "W3": w3, "W5": w5})
