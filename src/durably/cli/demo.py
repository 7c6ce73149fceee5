"""The showcase behind ``durably demo``: a checkout workflow survives a SIGKILL.

The parent process (:func:`showcase`) starts a worker *process* that runs the
:func:`checkout` workflow on a SQLite file, watches its journal from its own
(non-executing) engine, SIGKILLs the worker while step 3 runs, then starts a
fresh worker that resumes the run. Every step body appends a line to an effects
log, so the summary can prove what ran how often: the checkpointed steps ran
exactly once, and only the interrupted one ran again.

``python -m durably.cli.demo --db PATH --run-id ID --effects FILE`` is the worker
process: it starts (or, for an existing run id, resumes) the run and waits for
its result.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass

import durably

ORDER_ID = "o-1001"
ORDER_CENTS = 12_999
LEDGER_THRESHOLD_CENTS = 10_000  # orders this large also get a ledger entry
KILL_DURING = "create_shipment"  # step 3

_effects_path: str | None = None  # set by the worker process from --effects


@dataclass(frozen=True)
class Receipt:
    charge_id: str
    cents: int


def _perform(step: str, order_id: str, seconds: float) -> None:
    """Pretend to do a step's side effect, and log that its body ran."""
    print(f"  [pid {os.getpid()}] step {step}(order {order_id}) ...", end="", flush=True)
    # Logged after the print: once the watcher sees this line, the print is out too.
    if _effects_path is not None:
        with open(_effects_path, "a", encoding="utf-8") as log:
            log.write(f"{step} {os.getpid()}\n")
    time.sleep(seconds)
    print(" done", flush=True)


@durably.step
def reserve_inventory(order_id: str) -> int:
    _perform("reserve_inventory", order_id, 0.3)
    return 1


@durably.step(retries=5)
def charge_card(order_id: str, cents: int) -> Receipt:
    _perform("charge_card", order_id, 0.4)
    return Receipt(charge_id=f"ch_{secrets.token_hex(4)}", cents=cents)


@durably.step
def create_shipment(order_id: str) -> str:
    _perform("create_shipment", order_id, 0.5)
    return f"trk_{secrets.token_hex(4)}"


@durably.step
def send_confirmation(order_id: str, tracking: str) -> bool:
    _perform("send_confirmation", order_id, 0.3)
    return True


@durably.step
def update_ledger(order_id: str, receipt: Receipt) -> None:
    _perform("update_ledger", order_id, 0.3)


@durably.workflow(name="demo.checkout")
def checkout(order_id: str, cents: int) -> str:
    """Reserve, charge, ship, confirm, and book large orders in the ledger."""
    reserve_inventory(order_id)
    receipt = charge_card(order_id, cents)
    tracking = create_shipment(order_id)
    send_confirmation(order_id, tracking)
    if receipt.cents >= LEDGER_THRESHOLD_CENTS:
        update_ledger(order_id, receipt)
    return f"order {order_id}: charged ${cents / 100:.2f} ({receipt.charge_id}), shipped {tracking}"


def expected_steps(cents: int) -> list[str]:
    steps = ["reserve_inventory", "charge_card", "create_shipment", "send_confirmation"]
    return [*steps, "update_ledger"] if cents >= LEDGER_THRESHOLD_CENTS else steps


# -- the worker process ----------------------------------------------------------------
def work(argv: list[str] | None = None) -> int:
    """Start or resume one checkout run in this process and wait for its result."""
    global _effects_path
    parser = argparse.ArgumentParser(prog="python -m durably.cli.demo")
    parser.add_argument("--db", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--effects", required=True)
    parser.add_argument("--order", default=ORDER_ID)
    parser.add_argument("--cents", type=int, default=ORDER_CENTS)
    args = parser.parse_args(argv)
    _effects_path = args.effects
    pid = os.getpid()
    with durably.Engine(args.db, poll_interval=0.1) as engine:
        try:
            done = sum(s.status == "completed" for s in engine.steps(args.run_id))
            print(f"  [pid {pid}] worker up; run has {done} checkpointed steps, resuming")
        except durably.RunNotFound:
            print(f"  [pid {pid}] worker up; starting run {args.run_id}")
        sys.stdout.flush()
        starter = engine.with_options(run_id=args.run_id)
        handle = starter.start_workflow(checkout, args.order, args.cents)
        result = handle.result(timeout=60)
    print(f"  [pid {pid}] run finished: {result}", flush=True)
    return 0


# -- the parent: the story -------------------------------------------------------------
class DemoFailed(Exception):
    """The demo's story did not hold (or a worker misbehaved)."""


def _spawn(db: str, run_id: str, effects: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # Let the worker import this very copy of durably, installed or not.
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(durably.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "durably.cli.demo", "--db", db, "--run-id", run_id]
    return subprocess.Popen([*command, "--effects", effects], env=env)


def _executions(effects: str) -> list[tuple[str, int]]:
    """(step, pid) for every step body that started, in order."""
    try:
        with open(effects, encoding="utf-8") as log:
            lines = [line.split() for line in log if line.strip()]
    except FileNotFoundError:
        return []
    return [(name, int(pid)) for name, pid in lines]


def _wait_for_step_3(
    engine: durably.Engine, run_id: str, effects: str, worker: subprocess.Popen[bytes]
) -> None:
    """Block until steps 1-2 are checkpointed and step 3's body is running."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise DemoFailed(f"worker pid {worker.pid} exited early (code {worker.returncode})")
        try:
            checkpointed = [s.name for s in engine.steps(run_id) if s.status == "completed"]
        except durably.RunNotFound:
            checkpointed = []
        started = [name for name, _ in _executions(effects)]
        if len(checkpointed) >= 2 and KILL_DURING in started:
            return
        time.sleep(0.01)
    raise DemoFailed("the worker did not reach step 3 within 20 s")


def _summary(engine: durably.Engine, run_id: str, effects: str, killed: int) -> bool:
    run = engine.get_run(run_id)
    journal = engine.steps(run_id)
    runs_of = Counter(name for name, _ in _executions(effects))
    pids_of: dict[str, list[int]] = {}
    for name, pid in _executions(effects):
        pids_of.setdefault(name, []).append(pid)
    expected = expected_steps(ORDER_CENTS)
    print()
    print(f"  {'#':<2} {'step':<18} {'checkpoint':<11} {'executed':<9} by worker pid")
    print(f"  {'-' * 2} {'-' * 18} {'-' * 11} {'-' * 9} {'-' * 24}")
    for number, name in enumerate(expected, start=1):
        status = next((s.status for s in journal if s.name == name), "missing")
        pids = ", ".join(
            f"{pid} (killed)" if pid == killed and name == KILL_DURING else str(pid)
            for pid in pids_of.get(name, [])
        )
        print(f"  {number:<2} {name:<18} {status:<11} {runs_of[name]:<9} {pids}")
    print()
    print(f"  run {run_id}: {run.status.value}")
    print(f"  result: {run.output}")
    rerun = [n for n in expected if n != KILL_DURING and runs_of[n] != 1]
    holds = (
        run.status is durably.RunStatus.COMPLETED
        and [s.name for s in journal] == expected
        and all(s.status == "completed" for s in journal)
        and not rerun
        and runs_of[KILL_DURING] in (1, 2)
    )
    if holds:
        print("  OK: completed steps were not re-run: each checkpointed step executed once;")
        print(f"      only {KILL_DURING}, interrupted mid-body, ran again (at-least-once).")
    else:
        print(f"  FAILED: the story does not hold (re-run or missing steps: {rerun or 'none'})")
    return holds


def showcase(db: str | None = None, keep: bool = False) -> bool:
    """Run the crash-and-resume story; True when it held."""
    workdir = tempfile.mkdtemp(prefix="durably-demo-")
    db = db or os.path.join(workdir, "demo.db")
    effects = os.path.join(workdir, "effects.log")
    run_id = f"demo-{secrets.token_hex(4)}"
    engine = durably.Engine(db)  # reads only: never launched, so it executes nothing
    worker: subprocess.Popen[bytes] | None = None
    try:
        print("durably demo: a checkout workflow whose worker process is SIGKILLed mid-run")
        print(f"  database: {db}")
        print(f"  run: {run_id} ({checkout.name}, order {ORDER_ID})")
        print()
        worker = _spawn(db, run_id, effects)
        print(f"> started worker process pid {worker.pid}", flush=True)
        _wait_for_step_3(engine, run_id, effects, worker)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        killed = worker.pid
        print(" [SIGKILL]")
        print(f"{_boom()} killed worker pid {killed} during step 3 ({KILL_DURING})")
        done = [s.name for s in engine.steps(run_id) if s.status == "completed"]
        print(f"  journal at the kill: {', '.join(done)} checkpointed")
        if KILL_DURING in done:  # only on a machine so loaded that the watcher fell behind
            print(f"  (the kill came late: {KILL_DURING} had already been checkpointed)")
        print()
        worker = _spawn(db, run_id, effects)
        print(f"> started a fresh worker process pid {worker.pid} to resume it", flush=True)
        if worker.wait(timeout=60) != 0:
            raise DemoFailed(f"the resuming worker exited with code {worker.returncode}")
        return _summary(engine, run_id, effects, killed)
    except DemoFailed as exc:
        print(f"\n  FAILED: {exc}")
        return False
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()
        engine.close()
        if keep:
            print(f"  kept {workdir} (effects.log{', demo.db' if db.startswith(workdir) else ''})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _boom() -> str:
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    return "\N{COLLISION SYMBOL}" if encoding == "utf8" else "***"


if __name__ == "__main__":
    sys.exit(work())
