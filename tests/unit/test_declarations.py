"""Declaring workflows, steps and their retry policies: checked at decoration time."""

from __future__ import annotations

import random

import pytest

import durably
from durably.retry import RetryPolicy, backoff_of


def test_backoff_grows_caps_and_jitters() -> None:
    plain = durably.Backoff(initial="2s", max="10s", factor=2, jitter=0)
    assert [plain.delay(n) for n in range(1, 6)] == [2, 4, 8, 10, 10]
    random.seed(1)
    jittered = durably.Backoff(initial=4, factor=1, jitter=0.5)
    delays = [jittered.delay(1) for _ in range(200)]
    assert min(delays) >= 2 and max(delays) <= 4 and len(set(delays)) > 100
    steep = durably.Backoff(initial=1, max=1e9, factor=99, jitter=0)
    assert steep.delay(10**9) == 1e9  # capped, no overflow
    assert durably.Backoff(initial=0, factor=2).delay(10**9) == 0


@pytest.mark.parametrize(
    ("spec", "first"),
    [("exponential", 1.0), ("fixed", 1.0), ("2s", 2.0), (0.5, 0.5), ("0s", 0.0)],
)
def test_backoff_forms(spec: object, first: float) -> None:
    backoff = backoff_of(spec)  # type: ignore[arg-type]
    assert backoff.initial == first
    if spec != "exponential":
        assert backoff.jitter == 0 and backoff.delay(5) == first


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"initial": "soon"}, "duration"),
        ({"factor": 0.5}, "factor"),
        ({"jitter": 2}, "jitter"),
        ({"initial": "10s", "max": "1s"}, "shorter than initial"),
    ],
)
def test_bad_backoffs_fail_when_declared(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        durably.Backoff(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backoff must be"):
        durably.step(backoff="sometimes")


def test_retry_policy() -> None:
    policy = RetryPolicy(retries=2, backoff="fixed")
    assert policy.next_delay(1, RuntimeError()) == 1.0
    assert policy.next_delay(3, RuntimeError()) is None  # retries spent
    assert policy.next_delay(1, durably.FatalError()) is None
    assert policy.next_delay(1, durably.RetryableError(retry_after="3s")) == 3.0
    with pytest.raises(ValueError, match="retries"):
        RetryPolicy(retries=-1)


def test_names_can_come_first() -> None:
    @durably.step("decl.charge", retries=0)
    def charge() -> None: ...

    @durably.workflow("decl.checkout", timeout="1h")
    def checkout() -> None: ...

    assert (charge.name, charge.policy.retries) == ("decl.charge", 0)
    assert (checkout.name, checkout.timeout) == ("decl.checkout", 3600.0)
    with pytest.raises(TypeError, match="given twice"):
        durably.step("a", name="b")  # type: ignore[call-overload]


def test_one_name_for_two_workflows_names_both() -> None:
    @durably.workflow(name="decl.taken")
    def first() -> None: ...

    with pytest.raises(ValueError, match=r"already registered by .*first; .*second cannot"):

        @durably.workflow(name="decl.taken")
        def second() -> None: ...


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"timeout": 0}, "timeout must be greater than zero"),
        ({"heartbeat_timeout": "0s"}, "heartbeat_timeout must be greater"),
        ({"timeout_grace": "-1s"}, "duration"),
    ],
)
def test_bad_step_timeouts(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        durably.step(**kwargs)  # type: ignore[call-overload]
