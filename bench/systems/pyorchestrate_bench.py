"""py-orchestrate (Python 3.12+) with its default SQLite database manager.

Workflows are invoked by name with keyword arguments and run on the orchestrator's
thread pool, at its default `max_workers=5` (with 8, W1 runs sometimes fail with
"database is locked"); there is no blocking wait, so completion is polled with
`get_workflow_status`. `Orchestrator.start()`
runs a recovery pass at once and then every 5 s, which is how W3 resumes.

py-orchestrate instruments activities by rebinding the workflow module's globals
by activity name, so each activity is registered under its own function name.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import common
from py_orchestrate import Orchestrator, activity, workflow

ROLE = "parent"
WORKDIR = Path(".")
WORKERS = 5  # the library default


@activity("add_one")
def add_one(x: int) -> int:
    return x + 1


@workflow("bench.three")
def three(x: int) -> int:
    return add_one(add_one(add_one(x)))


@workflow("bench.chain")
def chain(n: int) -> int:
    x = 0
    for _ in range(n):
        x = add_one(x)
    return x


@activity("nap")
def nap() -> bool:
    time.sleep(common.W5_SLEEP)
    return True


@workflow("bench.nap")
def napper() -> bool:
    return nap()


# One activity per step: recovery caches completed results by activity name, and
# only truthy results, so W3's steps have distinct names and return non-zero.
def make_crash_step(n: int) -> Any:
    def body() -> int:
        common.w3_step_body(WORKDIR, ROLE, n)
        return n

    body.__name__ = f"crash_step{n}"
    return activity(body.__name__)(body)


crash_step1, crash_step2, crash_step3, crash_step4, crash_step5 = (
    make_crash_step(n) for n in range(1, 6)
)


@workflow("bench.five")
def five() -> int:
    crash_step1()
    crash_step2()
    crash_step3()
    crash_step4()
    return crash_step5()


def wait_done(orchestrator: Orchestrator, workflow_ids: list[str], timeout: float) -> None:
    for workflow_id in workflow_ids:

        def done(workflow_id: str = workflow_id) -> bool:
            status = orchestrator.get_workflow_status(workflow_id)
            if status["status"] == "failed":
                raise RuntimeError(f"a workflow failed: {status['error_message']}")
            return status["status"] == "done"

        common.wait_until(done, timeout, f"workflow {workflow_id}")


def run_many(args: Any, name: str, count: int, rounds: int = 1, **kwargs: Any) -> list[float]:
    """Seconds to start ``count`` runs and see them all done, once per round."""
    orchestrator = Orchestrator(db_path=str(args.dir / "orchestrate.db"), max_workers=WORKERS)
    orchestrator.start()
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        ids = [orchestrator.invoke_workflow(name, **kwargs) for _ in range(count)]
        wait_done(orchestrator, ids, 600)
        timings.append(time.perf_counter() - started)
    orchestrator.stop()
    return timings


def w1(args: Any) -> dict[str, Any]:
    (seconds,) = run_many(args, "bench.three", common.W1_WORKFLOWS, x=1)
    return {"seconds": seconds, "wf_per_s": common.W1_WORKFLOWS / seconds}


def w2(args: Any) -> dict[str, Any]:
    return common.w2_result(
        run_many(args, "bench.chain", 1, rounds=common.W2_ROUNDS, n=common.W2_STEPS)
    )


def w5(args: Any) -> dict[str, Any]:
    (seconds,) = run_many(args, "bench.nap", common.W5_WORKFLOWS)
    return {"seconds": seconds}


def w3(args: Any) -> dict[str, Any]:
    global ROLE, WORKDIR
    ROLE, WORKDIR = args.role, args.dir
    started = time.perf_counter()
    orchestrator = Orchestrator(db_path=str(args.dir / "orchestrate.db"), max_workers=WORKERS)
    orchestrator.start()  # in the recover role, its first recovery pass resumes the run
    id_file = args.dir / "workflow_id"
    if args.role == "crash":
        id_file.write_text(orchestrator.invoke_workflow("bench.five"))
        time.sleep(common.W3_HANG)  # killed before this ends
    wait_done(orchestrator, [id_file.read_text()], 110)
    seconds = time.perf_counter() - started
    orchestrator.stop()
    return {"in_process_s": seconds, "recovery": "automatic recovery pass in start()"}


if __name__ == "__main__":
    common.main(__file__, {"W1": w1, "W2": w2, "W3": w3, "W5": w5})
