"""Celery as a transport: wake-ups through a broker, state in durably's database.

``Engine(url, transport=CeleryTransport(app))`` (``pip install 'durably[celery]'``).
Celery carries one kind of message, ``durably.wake(run_id, queue)``: "a run of this
queue is runnable". It is published after the commit that made the run runnable (a
start, a signal, a child's end, a released lease); timers never become an ``eta``:
the sweeper (:mod:`durably.contrib.celery.sweeper`) wakes due runs from the database,
which also repairs lost messages. In the Celery worker's processes the engine is
launched with this transport as its gate: the task claims the first runnable run of
the queue through the ordinary claim (leases, fencing, queue limits), executes it
until it ends or waits, and returns; a wake-up that finds nothing to claim (the run
ended, is not due, or a live worker holds it) is acknowledged and dropped, never
retried. While the broker is out of reach the same processes claim from the
database, as ``durably worker`` does. See docs/celery.md.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from typing import TYPE_CHECKING, Any

try:
    from celery import Celery, signals
    from celery.concurrency.prefork import TaskPool as PreforkPool
except ImportError as exc:  # pragma: no cover - exercised with the module hidden
    raise ImportError("durably.contrib.celery needs Celery: pip install 'durably[celery]'") from exc

from durably import queues
from durably.contrib.celery.publisher import Publisher, Route
from durably.contrib.celery.sweeper import LOCK, Sweeper
from durably.errors import StoreError
from durably.hooks import RunEnded, RunReleased, RunStarted, SignalSent, Subscriber
from durably.worker.claimer import owner_is_dead

if TYPE_CHECKING:
    from durably.engine import Engine
    from durably.worker.executor import Executor

log = logging.getLogger("durably.celery")
TASK = "durably.wake"


class CeleryTransport(Subscriber):
    """Wake-ups for an engine's runs through ``app``'s broker, executed by its workers.

    Args:
        app: the Celery application (its broker, its workers).
        route: the Celery queue of a wake-up, from the run's workflow and durably
            queue (``None``: the app's default queue); the workers consuming it must
            import that workflow.
        sweep_interval: seconds between two sweeps for due runs (the precision of
            timers), and between two claims from the database while the broker is
            out of reach.
        rewake: seconds after which a due run that is still unclaimed is woken again
            (its message was lost).
        probe_interval: seconds between two checks, in each worker process, that the
            broker answers.
    """

    def __init__(
        self,
        app: Celery,
        *,
        route: Route | None = None,
        sweep_interval: float = 1.0,
        rewake: float = 60.0,
        probe_interval: float = 5.0,
    ) -> None:
        for name, value in (
            ("sweep_interval", sweep_interval),
            ("rewake", rewake),
            ("probe_interval", probe_interval),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be positive seconds, not {value!r}")
        self.app = app
        self.slots = 1  # Gate: runs this process executes at once
        self._route = route
        self._interval, self._rewake, self._probe_every = sweep_interval, rewake, probe_interval
        self._engine: Engine | None = None
        self._publisher: Publisher | None = None
        self._sweeper: Sweeper | None = None
        self._serving: int | None = None  # the pid of the process this transport serves in
        self._stopping = False
        self._drain: Any = None  # a multiprocessing Event the pool's children wait on
        self._lock = threading.Lock()
        app.task(name=TASK, ignore_result=True)(self.deliver)
        signals.worker_init.connect(self._on_worker_init, weak=False)
        signals.worker_process_init.connect(self._on_process_init, weak=False)
        signals.worker_ready.connect(self._on_worker_ready, weak=False)
        signals.worker_shutting_down.connect(self._on_shutting_down, weak=False)

    # -- Transport: the engine publishes -------------------------------------------------
    def attach(self, engine: object) -> None:
        from durably.engine import Engine

        if not isinstance(engine, Engine):
            raise TypeError(f"a transport serves a durably Engine, not {engine!r}")
        if self._engine is not None:
            raise ValueError("this transport already serves an engine")
        self._engine = engine
        self._publisher = Publisher(self.app, TASK, self._route, self._lookup)
        engine.hooks.subscribe(self)

    @property
    def publisher(self) -> Publisher:
        if self._publisher is None:
            raise RuntimeError("the transport serves no engine: give it to Engine(transport=)")
        return self._publisher

    def _lookup(self, run_id: str) -> tuple[str, str] | None:
        assert self._engine is not None
        row = self._engine.store.get_run(run_id)
        return None if row is None else (row.workflow, row.queue)

    def run_started(self, event: RunStarted) -> None:
        self.publisher.wake(event.run_id, event.workflow, event.queue)

    def signal_sent(self, event: SignalSent) -> None:
        self.publisher.wake(event.run_id)

    def run_ended(self, event: RunEnded) -> None:
        if event.parent_id is not None:  # a parent waiting for it runs again
            self.publisher.wake(event.parent_id)
        limits = queues.declared(event.queue)
        if limits is not None and (limits.shared_limits or limits.worker_concurrency):
            self.publisher.wake(event.run_id, event.workflow, event.queue)  # a slot opened

    def run_released(self, event: RunReleased) -> None:
        self.publisher.wake(event.run_id, event.workflow)

    # -- Gate: the engine executes in Celery's worker processes --------------------------
    def polling(self) -> bool:
        return self._publisher is not None and not self._publisher.reachable

    def deliver(self, run_id: str, queue: str | None = None) -> str:
        """The task: claim the first runnable run of the run's queue here, execute it until
        it ends or waits. What it did, for Celery's log."""
        executor = self._serve()
        if executor is None:
            return "not executing here"
        try:
            if queue is None:
                row = executor.store.get_run(run_id)
                if row is None:
                    return f"no run {run_id}"
                queue = row.queue
            claim = executor.claimer.claim_in(queue)
            if claim is None and self._took_back(executor, run_id):
                claim = executor.claimer.claim_in(queue)
        except StoreError as exc:  # dropped: the run is still due in the database
            log.warning("a wake-up for run %s could not claim (%s)", run_id, exc)
            return "store unavailable"
        if claim is None:
            return "nothing to run"
        done = executor.execute(claim)
        while not done.wait(0.5):
            if self._engine is None or self._engine.executor is not executor:
                break  # shut down: its runs were released
        return f"executed {claim.run.run_id}"

    @staticmethod
    def _took_back(executor: Executor, run_id: str) -> bool:
        """Release ``run_id``'s lease if its owner was a process of this host that died
        (a pool's child killed mid-run, its message delivered again)."""
        row = executor.store.get_run(run_id)
        if row is None or row.owner is None or not owner_is_dead(row.owner):
            return False
        executor.store.release_owner(row.owner, dead=True)
        return True

    def _serve(self, slots: int | None = None) -> Executor | None:
        """Launch the engine in this process (once), fed by this transport's wake-ups."""
        engine = self._engine
        if engine is None or self._stopping:
            return None
        with self._lock:
            if self._serving != os.getpid():
                if slots is not None:
                    self.slots = slots
                engine.after_fork()
                self.publisher.after_fork()
                engine.launch(gate=self)
                executor = engine.executor
                if executor is None:
                    return None  # an engine with execute=False
                self._serving = os.getpid()
                self._sweeper = Sweeper(
                    engine.store,
                    self.publisher,
                    owner=executor.owner,
                    interval=self._interval,
                    rewake=self._rewake,
                    probe_every=self._probe_every,
                    stop=lambda: self._stopping,
                )
                self._sweeper.thread.start()
                if self._drain is not None:
                    threading.Thread(
                        target=self._drained, name="durably-celery-drain", daemon=True
                    ).start()
                log.info(
                    "durably serves Celery's wake-ups in process %d (%d slot(s))",
                    os.getpid(),
                    self.slots,
                )
        return engine.executor

    def _drained(self) -> None:
        self._drain.wait()
        self._shutdown()

    def _shutdown(self) -> None:
        """Drain like ``durably worker``: executions stop at their next durable call and
        their leases are released, so other workers continue them at once."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
        if self._sweeper is not None:
            self._sweeper.kick()
            self._sweeper.release()
        if self._engine is not None and self._serving == os.getpid():
            self._engine.shutdown()

    # -- Celery's signals ---------------------------------------------------------------
    def _ours(self, sender: Any) -> bool:
        return getattr(sender, "app", self.app) is self.app and self._engine is not None

    def _on_worker_init(self, sender: Any = None, **_: Any) -> None:
        if not self._ours(sender):
            return
        warn_about_settings(self.app)
        self._drain = multiprocessing.get_context("fork").Event()  # before the pool forks

    def _on_process_init(self, **_: Any) -> None:
        if self._engine is not None:  # a prefork child, or the solo pool's only process
            self._serve(1)

    def _on_worker_ready(self, sender: Any = None, **_: Any) -> None:
        pool = getattr(sender, "pool", None)
        if not self._ours(sender) or pool is None or isinstance(pool, PreforkPool):
            return  # prefork: each child serves (worker_process_init)
        self._serve(int(getattr(pool, "limit", None) or 1))

    def _on_shutting_down(self, **_: Any) -> None:
        if self._engine is None:
            return
        if self._drain is not None:
            self._drain.set()  # every process that serves drains (a pool's children, or this)
        elif self._serving == os.getpid():
            threading.Thread(target=self._shutdown, name="durably-celery-drain").start()


def warn_about_settings(app: Celery) -> None:
    """Say which of the app's settings let a killed worker's message be lost or held."""
    conf = app.conf
    if not conf.task_acks_late:
        log.warning(
            "task_acks_late is off: a wake-up is acknowledged before its run executes, so "
            "a worker killed mid-run leaves it to the sweeper; set task_acks_late=True"
        )
    elif not conf.task_reject_on_worker_lost:
        log.warning(
            "task_reject_on_worker_lost is off: the wake-up of a run whose worker was "
            "killed is not delivered again; set task_reject_on_worker_lost=True"
        )
    if (conf.worker_prefetch_multiplier or 0) != 1:
        log.warning(
            "worker_prefetch_multiplier=%s: a worker holds wake-ups it cannot run yet; set it to 1",
            conf.worker_prefetch_multiplier,
        )


__all__ = ["LOCK", "TASK", "CeleryTransport", "warn_about_settings"]
