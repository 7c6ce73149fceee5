"""Mocked steps, for testing how a workflow handles what its steps return or raise.

``engine.mock_step(step, returns=...)`` or ``raises=...`` is a context manager: while
it is open, the runs this engine executes get that outcome instead of running the
step's body. Everything else is as for the real step: the outcome is journaled (a
replay returns it), a raised error follows the step's retry policy, and a mocked
step's attempts are hooks' events like any other. Runs executed by other processes
are not affected.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from durably.registry import Step

_UNSET: Any = object()


class StepMock:
    """The outcome given to a mocked step, and the calls it received."""

    def __init__(self, step: Step[Any, Any], returns: Any, raises: BaseException | None) -> None:
        self.step = step
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []  # (args, kwargs)
        self._returns, self._raises = returns, raises
        self._lock = threading.Lock()

    def _outcome(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.calls.append((args, kwargs))
        if self._raises is not None:  # as raised afresh: no traceback of earlier attempts
            raise self._raises.with_traceback(None)
        return self._returns

    def stand_in(self) -> Step[Any, Any]:
        """The step the runs call instead: the same name, policy and timeouts."""
        step = self.step

        async def outcome_async(*args: Any, **kwargs: Any) -> Any:
            return self._outcome(*args, **kwargs)

        body: Callable[..., Any] = outcome_async if step.is_async else self._outcome
        stand_in: Step[Any, Any] = Step(
            body,
            step.name,
            step.policy,
            step.timeout,
            timeout_grace=step.timeout_grace,
            heartbeat_timeout=step.heartbeat_timeout,
        )
        stand_in.result_hint = step.result_hint
        return stand_in


class StepMocks:
    """The steps mocked in one engine, by name (read by its runs at each step)."""

    def __init__(self) -> None:
        self.active: dict[str, Step[Any, Any]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def mock(
        self,
        step: Step[Any, Any],
        *,
        returns: Any = _UNSET,
        raises: BaseException | type[BaseException] | None = None,
    ) -> Iterator[StepMock]:
        if (returns is _UNSET) == (raises is None):
            raise TypeError("mock_step takes one of returns= or raises=")
        if not isinstance(step, Step):
            raise TypeError(f"mock_step mocks a @durably.step, not {step!r}")
        if not isinstance(raises, BaseException | None) and not (
            isinstance(raises, type) and issubclass(raises, BaseException)
        ):
            raise TypeError(f"mock_step raises= an exception or its type, not {raises!r}")
        real = step
        error = raises() if isinstance(raises, type) else raises
        mock = StepMock(real, None if returns is _UNSET else returns, error)
        with self._lock:
            if real.name in self.active:
                raise ValueError(f"step {real.name!r} is mocked already")
            self.active[real.name] = mock.stand_in()
        try:
            yield mock
        finally:
            with self._lock:
                self.active.pop(real.name, None)
