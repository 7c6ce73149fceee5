"""DBOS Transact (`dbos` on PyPI) with a SQLite system database.

DBOS runs each started workflow on a thread of its own executor; `launch()` recovers
this executor's PENDING workflows, which is how W3 resumes after the SIGKILL.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import common
from dbos import DBOS, SetWorkflowID

ROLE = "parent"
WORKDIR = Path(".")


@DBOS.step()
def add_one(x: int) -> int:
    return x + 1


@DBOS.workflow(name="bench.three")
def three(x: int) -> int:
    return add_one(add_one(add_one(x)))


@DBOS.workflow(name="bench.chain")
def chain(n: int) -> int:
    x = 0
    for _ in range(n):
        x = add_one(x)
    return x


@DBOS.step()
def nap() -> None:
    time.sleep(common.W5_SLEEP)


@DBOS.workflow(name="bench.nap")
def napper() -> None:
    nap()


@DBOS.step()
def crash_step(n: int) -> int:
    common.w3_step_body(WORKDIR, ROLE, n)
    return n


@DBOS.workflow(name="bench.five")
def five() -> int:
    for n in range(1, common.W3_STEPS + 1):
        crash_step(n)
    return common.W3_STEPS


def launch(workdir: Path) -> None:
    DBOS(
        config={
            "name": "bench",
            "system_database_url": f"sqlite:///{workdir / 'dbos.sqlite'}",
            "log_level": "WARNING",
        }
    )
    DBOS.launch()


def w1(args: Any) -> dict[str, Any]:
    launch(args.dir)

    def run() -> None:
        handles = [DBOS.start_workflow(three, i) for i in range(common.W1_WORKFLOWS)]
        for handle in handles:
            handle.get_result()

    seconds = common.timed(run)
    DBOS.destroy()
    return {"seconds": seconds, "wf_per_s": common.W1_WORKFLOWS / seconds}


def w2(args: Any) -> dict[str, Any]:
    launch(args.dir)
    rounds = [
        common.timed(lambda: DBOS.start_workflow(chain, common.W2_STEPS).get_result())
        for _ in range(common.W2_ROUNDS)
    ]
    DBOS.destroy()
    return common.w2_result(rounds)


def w5(args: Any) -> dict[str, Any]:
    launch(args.dir)

    def run() -> None:
        handles = [DBOS.start_workflow(napper) for _ in range(common.W5_WORKFLOWS)]
        for handle in handles:
            handle.get_result()

    seconds = common.timed(run)
    DBOS.destroy()
    return {"seconds": seconds}


def w3(args: Any) -> dict[str, Any]:
    global ROLE, WORKDIR
    ROLE, WORKDIR = args.role, args.dir
    started = time.perf_counter()
    launch(args.dir)  # in the recover role, launch() resumes the PENDING run
    if args.role == "crash":
        with SetWorkflowID("w3"):
            DBOS.start_workflow(five)
        time.sleep(common.W3_HANG)  # killed before this ends
    common.wait_until(lambda: DBOS.get_workflow_status("w3").status == "SUCCESS", 120, "recovery")
    seconds = time.perf_counter() - started
    DBOS.destroy()
    return {"in_process_s": seconds, "recovery": "automatic on DBOS.launch()"}


if __name__ == "__main__":
    common.main(__file__, {"W1": w1, "W2": w2, "W3": w3, "W5": w5})
