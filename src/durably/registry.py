"""The ``@workflow`` and ``@step`` decorators and the in-process workflow registry.

The registry maps a workflow's name to its function. It is the only way code is
found for a run: nothing read from the database is imported or unpickled
(docs/guarantees.md, "Data is not code").
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import threading
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar, overload

from durably import current
from durably.durations import parse_duration
from durably.errors import WorkflowNotFound
from durably.names import check_optional
from durably.retry import BackoffSpec, Duration, RetryPolicy
from durably.serialization import return_hint

P = ParamSpec("P")
R = TypeVar("R")

#: How long an abandoned sync step body is waited for before its retry starts (seconds).
DEFAULT_TIMEOUT_GRACE = 5.0

_workflows: dict[str, Workflow[Any, Any]] = {}
_lock = threading.Lock()


#: The keywords of ``Engine.with_options``: named in the error of a start that passes one.
START_OPTIONS = frozenset(
    {"run_id", "idempotency_key", "queue", "priority", "delay", "partition_key"}
)


class Workflow(Generic[P, R]):
    """A registered workflow. Calling it directly runs it as a plain function."""

    def __init__(
        self,
        fn: Callable[P, R],
        name: str,
        timeout: float | None = None,
        version: str | None = None,
    ) -> None:
        self.fn = fn
        self.name = name
        self.timeout = timeout
        #: What ``durably workflows`` shows of the code workers run: the version given,
        #: or a fingerprint of the function's code (two workers differ if it differs).
        self.version = version or _fingerprint(fn)
        self.is_async = inspect.iscoroutinefunction(fn)
        self._signature: inspect.Signature | bool | None = False  # False: not looked up yet
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def check_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Raise :class:`TypeError` now if a run could not call the workflow with these.

        A start that would only fail on a worker, after its row was written, fails at
        the caller instead.
        """
        if self._signature is False:
            try:
                self._signature = inspect.signature(self.fn)
            except (TypeError, ValueError):  # no signature to check against
                self._signature = None
        if not isinstance(self._signature, inspect.Signature):
            return
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            options = sorted((set(kwargs) & START_OPTIONS) - set(self._signature.parameters))
            hint = (
                f"; {options[0]!r} is a start option: pass it with "
                f"engine.with_options({options[0]}=...).start_workflow(...)"
                if options
                else ""
            )
            raise TypeError(f"cannot start workflow {self.name!r}: {exc}{hint}") from None

    def __repr__(self) -> str:
        return f"<durably.Workflow {self.name}>"


class Step(Generic[P, R]):
    """A step: its result is checkpointed inside a workflow; a plain call outside."""

    def __init__(
        self,
        fn: Callable[P, R],
        name: str,
        policy: RetryPolicy,
        timeout: float | None = None,
        *,
        timeout_grace: float = DEFAULT_TIMEOUT_GRACE,
        heartbeat_timeout: float | None = None,
    ) -> None:
        self.fn = fn
        self.name = name
        self.policy = policy
        self.timeout = timeout
        self.timeout_grace = timeout_grace
        self.heartbeat_timeout = heartbeat_timeout
        self.is_async = inspect.iscoroutinefunction(fn)
        self.result_hint = return_hint(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        ctx = current.workflow_run.get()
        if ctx is None:
            return self.fn(*args, **kwargs)
        return ctx.call_step(self, args, kwargs)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<durably.Step {self.name}>"


def register(wf: Workflow[Any, Any]) -> None:
    with _lock:
        existing = _workflows.get(wf.name)
        if existing is not None and not _same_function(existing.fn, wf.fn):
            raise ValueError(
                f"workflow name {wf.name!r} is already registered by {_where(existing.fn)}; "
                f"{_where(wf.fn)} cannot take it too: give one of them another name"
            )
        _workflows[wf.name] = wf


def _fingerprint(fn: Callable[..., Any]) -> str:
    code = getattr(fn, "__code__", None)
    if code is None:
        return "unknown"
    digest = hashlib.sha256(code.co_code)
    for const in code.co_consts:  # nested functions and literals change the code too
        digest.update(repr(getattr(const, "co_code", const)).encode())
    return "code-" + digest.hexdigest()[:8]


def _where(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _same_function(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    # A module imported twice (as __main__ and by name, or reloaded) registers again.
    return a.__qualname__ == b.__qualname__ and inspect.getfile(a) == inspect.getfile(b)


def names() -> tuple[str, ...]:
    """Names of every registered workflow (the runs this process can execute)."""
    return tuple(_workflows)


def lookup(name: str) -> Workflow[Any, Any]:
    """The workflow registered under ``name``, or :class:`WorkflowNotFound`."""
    try:
        return _workflows[name]
    except KeyError:
        known = ", ".join(sorted(_workflows)) or "none"
        raise WorkflowNotFound(
            f"no workflow named {name!r} is registered in this process (registered: {known}); "
            "import the module that defines it before starting or executing it"
        ) from None


@overload
def workflow(fn: Callable[P, R], /) -> Workflow[P, R]: ...
@overload
def workflow(
    name: str | None = None,
    /,
    *,
    timeout: Duration | None = None,
    version: str | None = None,
) -> Callable[[Callable[P, R]], Workflow[P, R]]: ...
@overload
def workflow(
    *, name: str | None = None, timeout: Duration | None = None, version: str | None = None
) -> Callable[[Callable[P, R]], Workflow[P, R]]: ...
def workflow(
    fn: Callable[P, R] | str | None = None,
    /,
    *,
    name: str | None = None,
    timeout: Duration | None = None,
    version: str | None = None,
) -> Workflow[P, R] | Callable[[Callable[P, R]], Workflow[P, R]]:
    """Declare a durable workflow (sync or async). The default name is the qualified name.

    ``@durably.workflow``, ``@durably.workflow("orders.checkout.v1")`` and
    ``@durably.workflow(name="orders.checkout.v1", timeout="1h")`` all work.

    Args:
        fn: the function, when used as ``@durably.workflow`` without arguments (or the
            name, given first).
        name: a stable name to start it by; keep it when the code moves.
        timeout: past this long after its start the run is cancelled (its compensations
            run) and ``result()`` raises :class:`~durably.WorkflowTimedOut`.
        version: a label of this code (``"2024-06-01"``, a release), shown by
            ``durably workflows`` per live worker; default: a fingerprint of the code.
    """
    target, name = _name_first(fn, name)
    limit = _positive_duration("a workflow timeout", timeout)
    check_optional("version", version)

    def decorate(f: Callable[P, R]) -> Workflow[P, R]:
        wf = Workflow(f, name or f.__qualname__, timeout=limit, version=version)
        register(wf)
        return wf

    return decorate if target is None else decorate(target)


@overload
def step(fn: Callable[P, R], /) -> Step[P, R]: ...
@overload
def step(
    name: str | None = None,
    /,
    *,
    retries: int = 3,
    backoff: BackoffSpec = "exponential",
    timeout: Duration | None = None,
    timeout_grace: Duration = DEFAULT_TIMEOUT_GRACE,
    heartbeat_timeout: Duration | None = None,
) -> Callable[[Callable[P, R]], Step[P, R]]: ...
@overload
def step(
    *,
    name: str | None = None,
    retries: int = 3,
    backoff: BackoffSpec = "exponential",
    timeout: Duration | None = None,
    timeout_grace: Duration = DEFAULT_TIMEOUT_GRACE,
    heartbeat_timeout: Duration | None = None,
) -> Callable[[Callable[P, R]], Step[P, R]]: ...
def step(
    fn: Callable[P, R] | str | None = None,
    /,
    *,
    name: str | None = None,
    retries: int = 3,
    backoff: BackoffSpec = "exponential",
    timeout: Duration | None = None,
    timeout_grace: Duration = DEFAULT_TIMEOUT_GRACE,
    heartbeat_timeout: Duration | None = None,
) -> Step[P, R] | Callable[[Callable[P, R]], Step[P, R]]:
    """Declare a step (sync or async): a unit of side effects whose result is checkpointed.

    Args:
        fn: the function, when used as ``@durably.step`` without arguments (or the
            name, given first: ``@durably.step("charge")``).
        name: the name recorded in the journal (default: the qualified name).
        retries: attempts after the first before the step fails with ``StepFailed``.
            The default, 3, runs a failing body up to 4 times: its side effect too.
        backoff: the wait between attempts: ``"exponential"`` (1 s doubling to 5 min,
            jittered), ``"fixed"`` (1 s), a duration, or a :class:`~durably.Backoff`.
        timeout: the longest one attempt may take (``"30s"``); past it the attempt is
            abandoned and :class:`~durably.StepTimeout` goes through ``retries``.
        timeout_grace: how long an abandoned sync body is waited for to stop before its
            retry starts (a thread cannot be killed; see ``durably.heartbeat``).
        heartbeat_timeout: the body must call ``durably.heartbeat()`` at least this
            often, or it is taken as hung (as past its timeout).
    """
    target, name = _name_first(fn, name)
    policy = RetryPolicy(retries=retries, backoff=backoff)
    limit = _positive_duration("a step timeout", timeout)
    grace = parse_duration(timeout_grace)
    beat = _positive_duration("a heartbeat_timeout", heartbeat_timeout)

    def decorate(f: Callable[P, R]) -> Step[P, R]:
        return Step(
            f,
            name or f.__qualname__,
            policy,
            limit,
            timeout_grace=grace,
            heartbeat_timeout=beat,
        )

    return decorate if target is None else decorate(target)


def _name_first(fn: Any, name: str | None) -> tuple[Any, str | None]:
    """A decorator's first argument is the function, or its name (``@step("charge")``)."""
    if isinstance(fn, str):
        if name is not None:
            raise TypeError(f"the name is given twice: {fn!r} and name={name!r}")
        fn, name = None, fn
    elif fn is not None and not callable(fn):
        raise TypeError(f"expected a function or a name, not {fn!r}")
    check_optional("name", name)
    return fn, name


def _positive_duration(what: str, value: Duration | None) -> float | None:
    seconds = None if value is None else parse_duration(value)
    if seconds == 0:
        raise ValueError(f"{what} must be greater than zero")
    return seconds
