"""docs/guarantees.md, battery item 5: graceful shutdown. SIGTERM a worker in the middle of a step:
it stops claiming, lets the step finish (not interrupted), releases the run at its
next durable call and exits 0 within the grace period; a peer resumes the run at
at once. The lease is 30 s, longer than the tests wait for the run: its end proves the
run was released, not left to expire.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

from tests.acceptance.effects import (
    executions,
    read_effects,
)
from tests.acceptance.pg_harness import (
    Schema,
    Worker,
    clean_stderr,
    wait_until,
)

LEASE, POLL, GRACE = 30.0, 0.2, 10.0
STEP_SECONDS = 2.0
RUN = "drained-run"


def _in_step(schema: Schema, worker: Worker) -> bool:
    return any(e.pid == worker.pid for e in read_effects(schema.effects))


def test_sigterm_finishes_the_step_and_releases_the_run(
    schema: Schema, workers: list[Worker]
) -> None:
    settings = {"lease": LEASE, "poll": POLL, "grace": GRACE}
    leaving = Worker(schema, name="leaving", **settings).wait_ready()
    workers.append(leaving)
    with schema.client() as client:
        client.with_options(run_id=RUN).start_workflow("pg.long", RUN, STEP_SECONDS, 3)
        wait_until(lambda: _in_step(schema, leaving), 15, "the worker to enter the long step")
        peer = Worker(schema, name="peer", **settings).wait_ready()
        workers.append(peer)
        assert not any(e.pid == peer.pid for e in read_effects(schema.effects))

        leaving.signal(signal.SIGTERM)
        code = leaving.wait(GRACE + 5)
        output = client.handle(RUN).result(timeout=10)  # well within the 30 s lease

    assert code == 0, leaving.describe()
    assert "SIGTERM received" in leaving.stdout and "stopped" in leaving.stdout
    assert not clean_stderr(leaving), leaving.describe()
    assert not clean_stderr(peer), peer.describe()

    runs_of = executions(read_effects(schema.effects))
    (body,) = runs_of[(RUN, "long")]
    assert body.pid == leaving.pid and body.end is not None, "the step ran once, to its end"
    assert body.end - body.start >= STEP_SECONDS - 0.01, "the step was not interrupted"
    journal = schema.journal()[RUN]
    assert json.loads(journal[0][3] or "null") == body.token, "the leaving worker checkpointed it"
    after = [runs_of[(RUN, f"after{i}")] for i in (1, 2, 3)]
    assert all([x.pid for x in a] == [peer.pid] for a in after), "the peer did the rest"
    assert output == [json.loads(j[3] or "null") for j in journal]
    assert schema.runs()[RUN]["attempts"] == 2


def _outlast_the_grace(
    schema: Schema, workers: list[Worker], grace: float, step: float
) -> tuple[Worker, Worker, float, object]:
    """A worker runs a step longer than its grace and gets SIGTERM; a peer stands by."""
    settings = {"lease": LEASE, "poll": POLL, "grace": grace}
    leaving = Worker(schema, name="leaving", **settings).wait_ready()
    workers.append(leaving)
    with schema.client() as client:
        client.with_options(run_id=RUN).start_workflow("pg.long", RUN, step, 1)
        wait_until(lambda: _in_step(schema, leaving), 15, "the worker to enter the long step")
        peer = Worker(schema, name="peer", **settings).wait_ready()
        workers.append(peer)
        term_at = leaving.signal(signal.SIGTERM)
        output = client.handle(RUN).result(timeout=20)  # within the 30 s lease: released
    return leaving, peer, term_at, output


def test_a_step_longer_than_the_grace_is_released_at_the_deadline(
    schema: Schema, workers: list[Worker]
) -> None:
    """A step that outlasts the grace cannot be interrupted (it is a thread): the run is
    released when the grace ends, a peer runs the step again (G2's window: no checkpoint
    was written) and the late checkpoint of the leaving worker is fenced out."""
    grace, step = 1.5, 4.0
    leaving, peer, _, output = _outlast_the_grace(schema, workers, grace, step)
    wait_until(
        lambda: (
            len(executions(read_effects(schema.effects))[(RUN, "long")]) == 2
            and all(x.end for x in executions(read_effects(schema.effects))[(RUN, "long")])
        ),
        10,
        "both executions of the step to end",
    )
    time.sleep(0.5)  # the leaving worker's late checkpoint is tried now
    runs_of = executions(read_effects(schema.effects))
    first, second = runs_of[(RUN, "long")]
    assert (first.pid, second.pid) == (leaving.pid, peer.pid)
    assert first.start < second.start, "the peer took the run over only after the grace"
    journal = schema.journal()[RUN]
    assert [j[0] for j in journal] == [0, 1]
    assert json.loads(journal[0][3] or "null") == second.token, "only the peer's checkpoint landed"
    assert output == [json.loads(j[3] or "null") for j in journal]
    assert [x.pid for x in runs_of[(RUN, "after1")]] == [peer.pid]


def test_the_worker_exits_soon_after_a_step_that_outlasts_the_grace(
    schema: Schema, workers: list[Worker]
) -> None:
    grace, step = 1.0, 5.0  # the step ends well after the engine closed its pool
    leaving, _, term_at, _ = _outlast_the_grace(schema, workers, grace, step)
    try:
        code = leaving.wait(step + 3.0)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"the worker had not exited {time.time() - term_at:.1f}s after SIGTERM "
            f"(step {step:g}s, grace {grace:g}s)\n{leaving.describe()}"
        ) from None
    assert code == 0, leaving.describe()
