"""The effect-log checker must catch every violation it is meant to catch.

A lenient checker would make the whole battery pass vacuously, so it is tested
on hand-written logs first.
"""

from __future__ import annotations

from pathlib import Path

from tests.acceptance.harness import (
    STARTED,
    Effect,
    Process,
    check_run,
    exactly_once,
    lost_runs,
    read_effects,
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
    path.write_text("r1 s1 10\nr1 __started__ 10\n")
    assert read_effects(path) == [Effect("r1", "s1", 10), Effect("r1", STARTED, 10)]
    assert read_effects(tmp_path / "missing.log") == []


def test_a_rerun_of_a_step_the_killed_process_had_left_is_caught() -> None:
    """Without a snapshot: the killed process went on to s2, so s1 had committed."""
    log = _log(("s1", 1), ("s2", 1), ("s1", 2), ("s2", 2), ("s3", 2))
    processes = [Process(1, killed=True), Process(2)]
    problems = check_run(log, "r", STEPS, processes).problems
    assert any("s1 ran again after process 1 was killed" in p for p in problems), problems
    assert not any("s2 ran again" in p for p in problems), problems
