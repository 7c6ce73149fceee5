"""A recorded traceback shows the user's frames, not the engine's between them."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import Any, cast

import pytest

import durably
from durably.durations import parse_duration
from durably.errors import ErrorInfo

PACKAGE = os.path.dirname(os.path.abspath(durably.__file__)) + os.sep


def _raised(fn: Callable[[], object], *, from_inside: bool = False) -> BaseException:
    """What ``fn`` raised; ``from_inside`` leaves out this frame, as if durably caught it."""
    try:
        fn()
    except BaseException as exc:
        if from_inside:
            assert exc.__traceback__ is not None
            exc.with_traceback(exc.__traceback__.tb_next)
        return exc
    raise AssertionError("nothing was raised")


def _wrapping_durablys_error() -> None:
    try:
        durably.wait_for_signal("approval")  # NotInWorkflow, raised in durably's frames
    except durably.NotInWorkflow as exc:
        raise RuntimeError("wrapped by the user") from exc


def test_the_users_frames_are_kept_and_durablys_left_out_in_the_whole_chain() -> None:
    text = ErrorInfo.from_exception(_raised(_wrapping_durablys_error)).traceback
    cause, error = text.split("The above exception was the direct cause")
    assert "in _wrapping_durablys_error" in cause and "durably.errors.NotInWorkflow" in cause
    assert "in _wrapping_durablys_error" in error and "RuntimeError: wrapped" in error
    assert PACKAGE not in text


def test_the_errors_of_a_group_lose_durablys_frames_too() -> None:
    error = _raised(_wrapping_durablys_error)
    assert isinstance(error, Exception)
    group = ExceptionGroup("both failed", [error, error])
    text = ErrorInfo.from_exception(group).traceback
    assert text.count("RuntimeError: wrapped by the user") == 2 and PACKAGE not in text


def test_durablys_own_error_from_its_own_frames_shows_none_of_them() -> None:
    exc = _raised(partial(durably.wait_for_signal, "approval"), from_inside=True)
    text = ErrorInfo.from_exception(exc).traceback
    assert text.startswith("durably.errors.NotInWorkflow: durably.wait_for_signal()")


def test_any_other_error_from_durablys_frames_keeps_them_a_bug_is_traceable() -> None:
    exc = _raised(partial(parse_duration, cast(Any, [])), from_inside=True)
    assert isinstance(exc, TypeError)  # not one of durably's types
    assert PACKAGE + "durations.py" in ErrorInfo.from_exception(exc).traceback


def test_durably_debug_keeps_every_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DURABLY_DEBUG", "1")
    text = ErrorInfo.from_exception(_raised(_wrapping_durablys_error)).traceback
    assert PACKAGE in text.split("The above exception")[0]
