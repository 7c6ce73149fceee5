"""docs/guarantees.md, battery items 8 (several processes on one SQLite file) and 10 (start races).

Every process runs a full engine on the same file: they start runs, claim each
other's queued runs and write checkpoints concurrently. No lock error may reach
user code, every step runs exactly once, and the file stays sound.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.acceptance import app
from tests.acceptance.effects import (
    Process,
    check_run,
    exactly_once,
    lost_runs,
    read_effects,
    started_runs,
)
from tests.acceptance.harness import (
    Child,
    ChildResult,
    assert_clean_exit,
    assert_killed,
    integrity_check,
    reader,
    run_app,
    run_statuses,
)

PROCESSES = 8
RUNS_PER_PROCESS = 50


def _open_barrier(workdir: Path, children: list[Child], timeout: float = 60) -> None:
    """Wait until every child is ready, then let them all go at once."""
    deadline = time.monotonic() + timeout
    while len(list(workdir.glob("ready-*"))) < len(children):
        for child in children:
            if child.proc.poll() is not None:
                raise AssertionError(f"child exited before the barrier\n{child.wait().describe()}")
        assert time.monotonic() < deadline, "children never reached the barrier"
        time.sleep(0.01)
    (workdir / "go").touch()


def _run_together(workdir: Path, arg_lists: list[list[str]], timeout: float) -> list[ChildResult]:
    children = [Child([*args, "--barrier", str(workdir / "go")]) for args in arg_lists]
    try:
        _open_barrier(workdir, children)
    finally:
        results = [child.wait(timeout) for child in children]
    return results


def test_eight_processes_on_one_file(tmp_path: Path) -> None:
    """8 engines x 50 runs of a 3-step workflow, all executing; half start queued runs
    that any engine may claim, half run their own at once; sync and async mixed."""
    db, effects = tmp_path / "durably.db", tmp_path / "effects.log"
    base = ["--db", str(db), "--effects", str(effects), "--poll", "0.1", "--timeout", "90"]
    arg_lists = []
    for i in range(PROCESSES):
        kind = "sync3" if i % 4 < 2 else "async3"
        args = [*base, "batch", "--kind", kind, "--prefix", f"p{i}", "--count"]
        arg_lists.append([*args, str(RUNS_PER_PROCESS), *(["--queued"] if i % 2 else [])])
    results = _run_together(tmp_path, arg_lists, timeout=110)
    for result in results:
        assert_clean_exit(result)

    all_runs = {f"p{i}-{n}" for i in range(PROCESSES) for n in range(RUNS_PER_PROCESS)}
    outputs: dict[str, list[int]] = {}
    for result in results:
        outputs.update(result.json()["outputs"])
    assert set(outputs) == all_runs
    wrong = {r: o for r, o in outputs.items() if o != app.expected_output(app.seed_of(r), 3)}
    assert not wrong, f"wrong outputs: {dict(list(wrong.items())[:5])}"

    log = read_effects(effects)
    assert started_runs(log) == all_runs
    deviations = exactly_once(log, app.THREE_STEP_NAMES)
    assert not deviations, f"steps not run exactly once: {dict(list(deviations.items())[:10])}"
    assert not lost_runs(all_runs, run_statuses(db, all_runs))
    executors = {e.pid for e in log if e.step != "__started__"}
    assert len(executors) > 1, "the test should have several processes executing"
    assert integrity_check(db) == "ok"


def test_a_live_peer_finishes_the_runs_of_a_killed_worker(tmp_path: Path) -> None:
    """Worker A starts 40 runs and is SIGKILLed in the middle of them; worker B, alive
    all along, finds A dead (same host: by its pid; the app's lease outlasts the test)
    and finishes every run A had started, rerunning only steps caught in G2's window."""
    db, effects = tmp_path / "durably.db", tmp_path / "effects.log"
    base = ["--db", str(db), "--effects", str(effects)]
    go = tmp_path / "go"
    peer = Child([*base, "--timeout", "60", "drain", "--prefix", "a-", "--go", str(go)])
    crash_at = "step.after_body:25"
    victim = run_app([*base, "batch", "--prefix", "a", "--count", "40"], crash_at=crash_at)
    assert_killed(victim, crash_at)
    go.touch()
    result = peer.wait(60)
    assert_clean_exit(result)

    log = read_effects(effects)
    started = started_runs(log)
    assert started, "the victim should have started runs before it died"
    with reader(db) as engine:
        created = {r.run_id for r in engine.list_runs(limit=1000)}
    assert started <= created
    assert not lost_runs(created, run_statuses(db, created))
    # Runs the victim created but died before marking started are checked too.
    processes = [Process(victim.pid, killed=True), Process(result.pid)]
    reports = [check_run(log, run, app.THREE_STEP_NAMES, processes) for run in sorted(created)]
    problems = [p for r in reports for p in r.problems]
    assert not problems, "\n".join(problems[:20])
    assert any(r.duplicates for r in reports), "the kill should have caught a step in its window"
    assert integrity_check(db) == "ok"


def _race(tmp_path: Path, queued: bool) -> None:
    db, effects = tmp_path / "durably.db", tmp_path / "effects.log"
    specs = [f"id:race-id-{n}" for n in range(15)] + [f"key:race-key-{n}" for n in range(15)]
    base = ["--db", str(db), "--effects", str(effects), "--poll", "0.1", "--timeout", "60"]
    args = [*base, "race", *(["--queued"] if queued else []), *specs]
    results = _run_together(tmp_path, [args, args], timeout=90)
    for result in results:
        assert_clean_exit(result)
    first, second = (r.json()["outputs"] for r in results)
    assert first == second, "both starters must get the same run and the same result"
    for n in range(15):
        assert first[f"race-id-{n}"][0] == f"race-id-{n}"
    deviations = exactly_once(read_effects(effects), app.THREE_STEP_NAMES)
    assert not deviations, f"a raced start ran more than once: {deviations}"
    with reader(db) as engine:
        runs = engine.list_runs(limit=1000)
    assert len(runs) == len(specs), "each id or key must create exactly one run"
    assert integrity_check(db) == "ok"


def test_same_run_started_by_two_running_engines_runs_once(tmp_path: Path) -> None:
    """Two processes start the same 15 run ids and 15 idempotency keys at the same moment,
    each on the in-process fast path (the creator owns the run at once)."""
    _race(tmp_path, queued=False)


def test_same_run_started_then_claimed_by_two_engines_runs_once(tmp_path: Path) -> None:
    """As above, but both create the runs queued and then race to claim them."""
    _race(tmp_path, queued=True)
