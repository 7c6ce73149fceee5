"""The effect-log checkers must catch every violation they are meant to catch.

A lenient checker would make the whole battery pass vacuously, so it is tested
on hand-written logs first.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.acceptance.effects import (
    STARTED,
    Effect,
    Execution,
    Process,
    check_run,
    check_tokens,
    exactly_once,
    executions,
    lost_runs,
    read_effects,
    record,
)

STEPS = ("s1", "s2", "s3")


def _log(*entries: tuple[str, int]) -> list[Effect]:
    return [Effect("r", step, pid) for step, pid in entries]


def test_a_clean_run_has_no_problems() -> None:
    report = check_run(_log(("s1", 1), ("s2", 1), ("s3", 1)), "r", STEPS, [Process(1)])
    assert report.problems == [] and report.duplicates == {}


def test_a_rerun_inside_the_crash_window_is_allowed() -> None:
    """Killed after s2's body but before its checkpoint: s2 may run again."""
    log = _log(("s1", 1), ("s2", 1), ("s2", 2), ("s3", 2))
    processes = [Process(1, killed=True), Process(2, frozenset({"s1"}))]
    report = check_run(log, "r", STEPS, processes)
    assert report.problems == []
    assert report.duplicates == {"s2": [1, 2]}


def test_a_rerun_after_a_committed_checkpoint_is_caught() -> None:
    log = _log(("s1", 1), ("s2", 1), ("s2", 2), ("s3", 2))
    processes = [Process(1, killed=True), Process(2, frozenset({"s1", "s2"}))]
    problems = check_run(log, "r", STEPS, processes).problems
    assert any("s2 re-executed by process 2" in p for p in problems), problems


def test_a_step_run_twice_by_one_process_is_caught() -> None:
    log = _log(("s1", 1), ("s1", 1), ("s2", 1), ("s3", 1))
    problems = check_run(log, "r", STEPS, [Process(1)]).problems
    assert any("executed 2 times in process 1" in p for p in problems), problems


def test_a_rerun_without_a_kill_is_caught() -> None:
    log = _log(("s1", 1), ("s1", 2), ("s2", 2), ("s3", 2))
    problems = check_run(log, "r", STEPS, [Process(1), Process(2)]).problems
    assert any("was not killed" in p for p in problems), problems


def test_a_step_that_never_ran_is_caught() -> None:
    problems = check_run(_log(("s1", 1), ("s3", 1)), "r", STEPS, [Process(1)]).problems
    assert problems == ["run r: step s2 never executed"]


def test_exactly_once_and_lost_runs() -> None:
    log = [
        Effect("a", STARTED, 1),
        *[Effect("a", s, 1) for s in STEPS],
        Effect("b", STARTED, 1),  # started, never ran
        *[Effect("c", s, 1) for s in (*STEPS, "s2")],  # s2 twice
    ]
    assert exactly_once(log, STEPS) == {"b": ["s1 x0", "s2 x0", "s3 x0"], "c": ["s2 x2"]}
    assert lost_runs({"a", "b"}, {"a": None, "b": None}) == {"a", "b"}


def test_effect_log_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "effects.log"
    record(str(path), "start", "r1", "s1", "t1")
    record(str(path), "mark", "r1", STARTED)
    (first, mark) = read_effects(path)
    assert (first.run, first.step, first.event, first.token) == ("r1", "s1", "start", "t1")
    assert (mark.step, mark.event, mark.pid) == (STARTED, "mark", os.getpid())
    assert 0 < first.at <= mark.at
    assert read_effects(tmp_path / "missing.log") == []


def test_a_rerun_of_a_step_the_killed_process_had_left_is_caught() -> None:
    """Without a snapshot: the killed process went on to s2, so s1 had committed."""
    log = _log(("s1", 1), ("s2", 1), ("s1", 2), ("s2", 2), ("s3", 2))
    processes = [Process(1, killed=True), Process(2)]
    problems = check_run(log, "r", STEPS, processes).problems
    assert any("s1 ran again after process 1 was killed" in p for p in problems), problems
    assert not any("s2 ran again" in p for p in problems), problems


def _executions(*runs: tuple[int, str, float, float | None]) -> list[Execution]:
    return [Execution("r", "s", token, pid, start, end) for pid, token, start, end in runs]


def test_tokens_a_clean_step_and_an_allowed_superseded_execution() -> None:
    assert list(check_tokens("r", "s", "t1", _executions((1, "t1", 1.0, 2.0)), set())) == []
    # pid 1 was killed mid-body; pid 2's execution committed: allowed.
    runs = _executions((1, "t1", 1.0, None), (2, "t2", 3.0, 4.0))
    assert list(check_tokens("r", "s", "t2", runs, {1})) == []


def test_tokens_catch_a_rerun_after_the_committing_execution() -> None:
    runs = _executions((1, "t1", 1.0, 2.0), (2, "t2", 3.0, 4.0))
    problems = list(check_tokens("r", "s", "t1", runs, {1, 2}))
    assert any("executed again (pids [2])" in p for p in problems), problems


def test_tokens_catch_an_unkilled_superseded_execution_and_a_foreign_token() -> None:
    runs = _executions((1, "t1", 1.0, 2.0), (2, "t2", 3.0, 4.0))
    assert any("never killed" in p for p in check_tokens("r", "s", "t2", runs, set()))
    assert any("matches no execution" in p for p in check_tokens("r", "s", "zz", runs, {1}))
    assert list(check_tokens("r", "s", "t1", [], set())) == ["run r s: never executed"]


def test_executions_pair_starts_with_ends() -> None:
    log = [
        Effect("r", "s", 1, "start", "t1", 1.0),
        Effect("r", "s", 2, "start", "t2", 2.0),
        Effect("r", "s", 1, "end", "t1", 3.0),
    ]
    ((key, runs),) = executions(log).items()
    assert key == ("r", "s")
    assert [(x.token, x.start, x.end) for x in runs] == [("t1", 1.0, 3.0), ("t2", 2.0, None)]
