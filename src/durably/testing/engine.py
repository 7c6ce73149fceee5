"""An engine for tests: its own store and :class:`VirtualClock`, time skipped when idle.

``TestEngine()`` executes runs at once (it is launched when made, unless told not
to) on an in-memory SQLite store; ``TestEngine("sqlite")`` on a file of its own;
``TestEngine(url)`` on a PostgreSQL schema, where the database's clock is made to
follow the virtual one (one offset per schema, read by the SQL that decides due runs
and leases). With ``auto_skip`` (the default), whenever no step body executes and
nothing is runnable, the clock jumps to the earliest moment something falls due: a
30-day sleep takes milliseconds. Every instance is isolated: tests may run in
parallel."""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

from durably.engine import Engine
from durably.errors import StoreClosed
from durably.hooks import StepStarted, Subscriber
from durably.stores import open_store
from durably.stores.base import Store
from durably.testing.clock import VirtualClock
from durably.transport import Gate

log = logging.getLogger("durably.testing")

#: Real seconds between two looks for idleness (each look is one small read).
LOOK = 0.002
#: ... and at most, while nothing at all is due.
QUIET = 0.05


class TestEngine(Engine):
    """An :class:`~durably.Engine` on a store of its own, with a virtual clock.

    Args:
        store: ``"memory"`` (the default), ``"sqlite"`` (a temporary file, removed by
            :meth:`close`), a path, or a ``postgresql://`` URL (its ``?schema=``
            should be the test's own: the schema's clock follows this engine's).
        clock: the :class:`VirtualClock` (default: one starting now).
        auto_skip: jump the clock whenever nothing can happen before the next due time.
        launch: execute runs from now on (``False``: once :meth:`launch` is called, after
            subscribing to its hooks, say).
        options: any other :class:`~durably.Engine` option (``lease``, ``workers`` ...).
    """

    __test__ = False  # not a test class, whatever pytest guesses from the name
    clock: VirtualClock

    def __init__(
        self,
        store: str = "memory",
        *,
        clock: VirtualClock | None = None,
        auto_skip: bool = True,
        launch: bool = True,
        **options: Any,
    ) -> None:
        clock = VirtualClock() if clock is None else clock
        if not isinstance(clock, VirtualClock):
            raise TypeError(f"clock must be a durably.testing.VirtualClock, not {clock!r}")
        self._tempdir: str | None = None
        super().__init__(self._open(store, clock), **options)
        self.auto_skip = auto_skip
        self.store.follow_clock(clock.offset)
        self._unfollow = clock.follow(self._clock_moving, self._clock_moved)
        self._bodies = 0  # step bodies executing now
        self._bodies_lock = threading.Lock()
        self._unsubscribe = self.hooks.subscribe(_Bodies(self))
        self._stop = threading.Event()
        self._skipper: threading.Thread | None = None
        if launch:
            self.launch()

    def _open(self, store: str, clock: VirtualClock) -> Store:
        if not isinstance(store, str):
            raise TypeError(f"store must be 'memory', 'sqlite', a path or a URL, not {store!r}")
        if store == "memory":
            return open_store(":memory:", clock=clock)
        if store == "sqlite":
            self._tempdir = tempfile.mkdtemp(prefix="durably-test-")
            return open_store(self.store_path, clock=clock)
        return open_store(store, clock=clock)

    @property
    def store_path(self) -> str:
        """The file of a ``"sqlite"`` store (another engine may open it: a restart)."""
        if self._tempdir is None:
            raise ValueError("only a TestEngine('sqlite') has a file of its own")
        return f"{self._tempdir}/durably.db"

    # -- lifecycle ----------------------------------------------------------------
    def launch(self, gate: Gate | None = None) -> Engine:
        super().launch(gate)
        if self._skipper is None and self.auto_skip and self.executor is not None:
            self._stop.clear()
            self._skipper = threading.Thread(
                target=self._skip_loop, name="durably-test-clock", daemon=True
            )
            self._skipper.start()
        return self

    def shutdown(self) -> None:
        self._stop.set()
        if self._skipper is not None:
            self._skipper.join()
            self._skipper = None
        super().shutdown()

    def close(self) -> None:
        self.shutdown()
        self._unfollow()
        with contextlib.suppress(StoreClosed):
            self.store.follow_clock(None)  # a PostgreSQL schema gets its own clock back
        super().close()
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)

    # -- time ---------------------------------------------------------------------
    def run_until_idle(self, timeout: float = 30.0) -> float:
        """Wait until nothing is runnable and nothing executes; with ``auto_skip``, until
        nothing is left to fall due either (sleeps, timers, retries, schedules). Returns
        the clock's time then; :class:`TimeoutError` after ``timeout`` real seconds (a
        schedule that fires forever never leaves the engine idle)."""
        deadline = time.monotonic() + timeout
        while True:
            idle, due = self._settled()
            if idle and (due is None or not self.auto_skip):
                return self.clock.time()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the engine was not idle within {timeout:g} real seconds")
            time.sleep(LOOK)

    def _clock_moving(self, seconds: float) -> None:
        """Before a jump: the store's clock moves with this one, and this engine's own
        leases with it (its heartbeat kept them alive through the real time it took)."""
        executor = self.executor
        self.store.clock_moved(None if executor is None else executor.owner, seconds)

    def _clock_moved(self) -> None:
        """After a jump: the claim loop and the scheduler look again at once."""
        self._woken()
        if self.executor is not None:
            self.executor.scheduler.wake()

    def _idle(self) -> tuple[bool, float | None]:
        """Whether nothing can happen before the clock moves; and when the next thing is
        due (a sleep under way, a timer, a retry, a lease running out, a schedule)."""
        executor = self.executor
        if executor is None or self._bodies:
            return False, None
        sleeping = self.clock.sleeping()
        executing = len(executor.inflight)
        if executing > len(sleeping):  # one of them is doing something
            return False, None
        held, due, now = self.store.idle_state(executor.owner, executor.workflow_names())
        if held != executing:  # claimed, not yet started
            return False, None
        first = min([*sleeping, due] if due is not None else sleeping, default=None)
        return first is None or first > now, first

    def _settled(self) -> tuple[bool, float | None]:
        """:meth:`_idle`, seen twice in a row with the same answer (a claim or a commit
        in between shows as a change)."""
        first = self._idle()
        if not first[0]:
            return first
        time.sleep(LOOK)
        again = self._idle()
        return (again[0] and again[1] == first[1]), again[1]

    def _skip_loop(self) -> None:
        pause = LOOK
        while not self._stop.wait(pause):
            try:
                idle, due = self._settled()
                if idle and due is not None and not self._stop.is_set():
                    self.clock.advance(max(0.0, due - self.store.now()) + 0.001)
                # Nothing at all to wait for: look less often (a test sending a signal
                # wakes the claim loop itself; a new timer is seen within QUIET).
                pause = min(pause * 2, QUIET) if idle and due is None else LOOK
            except StoreClosed:
                return
            except Exception:  # a store hiccup: the next look tries again
                log.exception("the test clock could not look for idleness")

    def __repr__(self) -> str:
        return f"TestEngine({self.store!r}, clock={self.clock!r})"


class _Bodies(Subscriber):
    """Counts the step bodies executing: time is never skipped under one."""

    def __init__(self, engine: TestEngine) -> None:
        self.engine = engine

    @contextlib.contextmanager
    def step_executing(self, event: StepStarted) -> Iterator[None]:
        with self.engine._bodies_lock:
            self.engine._bodies += 1
        try:
            yield
        finally:
            with self.engine._bodies_lock:
                self.engine._bodies -= 1
