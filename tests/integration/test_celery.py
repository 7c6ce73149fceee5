"""The Celery transport with real brokers (Redis, RabbitMQ) and real Celery workers.

State, leases and timers stay in durably's database, so a duplicated, late or lost
wake-up, a killed worker or a stopped broker changes nothing: every step body runs
once (once more only for a step whose worker was killed inside it), and no message
ever carries an ``eta`` or a ``countdown``.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery, signals

import durably
from durably.contrib.celery import TASK, CeleryTransport, warn_about_settings
from durably.handle import RunHandle
from tests import postgres
from tests.integration.celery.fleet import (
    Process,
    celery_worker,
    durably_worker,
    eventually,
)

REDIS = "redis://127.0.0.1:6379/{db}"
RABBIT = "amqp://guest:guest@127.0.0.1:5672//"
pytestmark = pytest.mark.timeout(180)


class Fleet:
    """A database, a broker, the workers of one test, and a client engine."""

    def __init__(self, tmp: Path, broker: str, store: str) -> None:
        self.tmp, self.broker, self.store = tmp, broker, store
        self.marks, self.sent = tmp / "marks", tmp / "sent"
        self.env = {
            **os.environ,
            "CELERY_TEST_BROKER": broker,
            "CELERY_TEST_STORE": store,
            "CELERY_TEST_MARKS": str(self.marks),
            "CELERY_TEST_SENT": str(self.sent),
            "CELERY_TEST_QUEUE": queue_of(tmp),
            "CELERY_TEST_ROUTED": f"{queue_of(tmp)}-routed",
        }
        self.processes: list[Process] = []
        self.app = Celery("client", broker=broker)
        self.app.conf.task_default_queue = self.env["CELERY_TEST_QUEUE"]
        routed = self.env["CELERY_TEST_ROUTED"]
        transport = CeleryTransport(
            self.app, route=lambda workflow, _: routed if workflow == "celery.routed" else None
        )
        self.engine = durably.Engine(store, transport=transport, execute=False, lease=5)
        self._sent_here: list[list[object]] = []  # [eta, countdown] of this process's messages
        signals.before_task_publish.connect(self._record, weak=False)

    def _record(self, headers: dict[str, object] | None = None, **_: object) -> None:
        if headers is not None:
            self._sent_here.append([headers.get("eta"), headers.get("countdown")])

    def celery(self, env: dict[str, str] | None = None, **options: Any) -> Process:
        log = self.tmp / f"celery{len(self.processes)}.log"
        process = celery_worker({**self.env, **(env or {})}, log, **options)
        self.processes.append(process)
        return process

    def durably(self) -> Process:
        process = durably_worker(self.env, self.tmp / f"durably{len(self.processes)}.log")
        self.processes.append(process)
        return process

    def start(
        self, run_id: str, workflow: str, *args: object, **options: object
    ) -> RunHandle[object]:
        starter = self.engine.with_options(run_id=run_id, **options)  # type: ignore[arg-type]
        return starter.start_workflow(workflow, run_id, *args)

    def began(self) -> dict[str, tuple[int, float]]:
        """When each step body began, and in which process (its first attempt)."""
        found: dict[str, tuple[int, float]] = {}
        for line in self.marks.read_text().splitlines():
            what, pid, at = line.split()
            found.setdefault(what, (int(pid), float(at)))
        return found

    def bodies(self) -> Counter[str]:
        """How many times each step body ran (``run:step``)."""
        if not self.marks.exists():
            return Counter()
        return Counter(line.split()[0] for line in self.marks.read_text().splitlines())

    def published(self) -> list[list[object]]:
        """[eta, countdown] of every message the workers and this client published."""
        sent = self.sent.read_text().splitlines() if self.sent.exists() else []
        return self._sent_here + [json.loads(line) for line in sent]

    def close(self) -> None:
        signals.before_task_publish.disconnect(self._record)
        for process in self.processes:
            process.kill()
        self.engine.close()


def queue_of(tmp: Path) -> str:
    return f"durably-test-{tmp.name}"


@pytest.fixture
def pg_store() -> Iterator[str]:
    postgres.require()
    schema = postgres.new_schema("celery")
    yield postgres.schema_url(schema)
    postgres.drop_schema(schema)


@contextlib.contextmanager
def fleet_of(tmp_path: Path, broker: str, store: str) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path, broker, store)
    try:
        yield fleet
    finally:
        fleet.close()
        purge(broker, queue_of(tmp_path))
        purge(broker, f"{queue_of(tmp_path)}-routed")


def purge(broker: str, queue: str) -> None:
    with Celery(broker=broker).connection_for_write() as connection:
        try:
            connection.default_channel.queue_delete(queue)
        except Exception:
            logging.getLogger(__name__).debug("queue %s not deleted", queue, exc_info=True)


@pytest.fixture(params=["redis", "rabbitmq"])
def fleet(request: pytest.FixtureRequest, tmp_path: Path, pg_store: str) -> Iterator[Fleet]:
    broker = REDIS.format(db=1) if request.param == "redis" else RABBIT
    with fleet_of(tmp_path, broker, pg_store) as made:
        yield made


@pytest.fixture
def redis_fleet(tmp_path: Path, pg_store: str) -> Iterator[Fleet]:
    with fleet_of(tmp_path, REDIS.format(db=1), pg_store) as made:
        yield made


def all_done(fleet: Fleet, handles: list[RunHandle[object]], timeout: float) -> None:
    for handle in handles:
        handle.result(timeout=timeout)


# -- the transport's promises ---------------------------------------------------------
def test_runs_sleep_wait_and_start_children_through_celery(fleet: Fleet) -> None:
    fleet.celery(concurrency=2)
    handles = [
        fleet.start(f"s{i}", "celery.steps", 3, 0.0, 0.5 if i % 2 else 0.0) for i in range(6)
    ]
    parent = fleet.start("p", "celery.parent")
    waiting = fleet.start("w", "celery.waits")
    eventually(lambda: fleet.bodies()["w:0"] == 1, 30, "the waiting run started")
    fleet.engine.send_signal("w", "go", "now")
    assert [h.result(timeout=60) for h in handles] == [3] * 6
    assert parent.result(timeout=60) == 2 and waiting.result(timeout=60) == "now"
    bodies = fleet.bodies()
    assert set(bodies.values()) == {1}, bodies  # each step body ran once
    assert len(bodies) == 6 * 3 + 2 + 2
    assert fleet.published() and all(m == [None, None] for m in fleet.published())


def test_each_wake_up_three_times_and_late_runs_each_step_once(fleet: Fleet) -> None:
    quiet = durably.Engine(fleet.store, execute=False)  # starts without a transport
    try:
        for i in range(5):
            quiet.with_options(run_id=f"d{i}").start_workflow("celery.steps", f"d{i}", 3, 0.05)
    finally:
        quiet.close()
    time.sleep(1.0)  # late: nothing was published for these runs yet
    for _ in range(3):
        for i in range(5):
            fleet.app.send_task(TASK, args=(f"d{i}", None))
    fleet.celery(concurrency=2)
    handles = [fleet.engine.handle(f"d{i}") for i in range(5)]
    all_done(fleet, handles, 60)
    for _ in range(3):  # later still: the runs have ended
        for i in range(5):
            fleet.app.send_task(TASK, args=(f"d{i}", "default"))
    time.sleep(1.5)
    assert fleet.bodies() == Counter({f"d{i}:{n}": 1 for i in range(5) for n in range(3)})
    assert all(m == [None, None] for m in fleet.published())


def test_a_visibility_timeout_shorter_than_a_run_runs_it_once(
    tmp_path: Path, pg_store: str
) -> None:
    with fleet_of(tmp_path, REDIS.format(db=1), pg_store) as fleet:
        fleet.app.conf.broker_transport_options = {"visibility_timeout": 1}
        fleet.celery(concurrency=2, env={"CELERY_TEST_VISIBILITY": "1"})
        # Two steps of 2.5 s around a sleep of 3 s: messages redelivered meanwhile.
        handle = fleet.start("v", "celery.steps", 3, 2.5, 3.0)
        assert handle.result(timeout=90) == 3
        time.sleep(2.0)  # what Redis delivers again after the run ended
        assert fleet.bodies() == Counter({"v:0": 1, "v:1": 1, "v:2": 1})


def test_a_worker_killed_mid_step_leaves_the_run_to_another(fleet: Fleet) -> None:
    doomed = fleet.celery(concurrency=1, name="doomed")
    handle = fleet.start("k", "celery.steps", 3, 3.0)
    eventually(lambda: fleet.bodies()["k:0"] == 1, 30, "the first step began")
    fleet.celery(concurrency=1, name="survivor")
    doomed.kill()  # SIGKILL, mid-step: its lease is held by a dead process
    killed_at = time.monotonic()
    assert handle.result(timeout=60) == 3
    assert time.monotonic() - killed_at < 5 + 3 * 3.0 + 10  # within the lease, then the steps
    bodies = fleet.bodies()
    assert bodies["k:0"] == 2 and bodies["k:1"] == 1 and bodies["k:2"] == 1, bodies


def test_without_acks_late_a_killed_worker_s_run_still_completes(redis_fleet: Fleet) -> None:
    """Its wake-up was acknowledged before the run executed: the sweeper wakes the run
    once a peer on this host has seen its owner died."""
    fleet = redis_fleet
    early = {"CELERY_TEST_ACKS_LATE": "0"}
    doomed = fleet.celery(concurrency=1, name="doomed", env=early)
    handle = fleet.start("e", "celery.steps", 2, 2.0)
    eventually(lambda: fleet.bodies()["e:0"] == 1, 30, "the first step began")
    fleet.celery(concurrency=1, name="survivor", env=early)
    doomed.kill()
    assert handle.result(timeout=60) == 1
    bodies = fleet.bodies()
    assert bodies["e:0"] == 2 and bodies["e:1"] == 1, bodies


def test_a_warm_shutdown_releases_the_runs_for_others_at_once(redis_fleet: Fleet) -> None:
    fleet = redis_fleet
    first = fleet.celery(concurrency=1, name="first")
    handle = fleet.start("t", "celery.steps", 12, 0.25)
    eventually(lambda: fleet.bodies()["t:1"] == 1, 30, "two steps ran")
    began = time.monotonic()
    assert first.terminate() == 0
    assert time.monotonic() - began < 10
    row = fleet.engine.store.get_run("t")
    assert row is not None and row.owner is None and not row.status.terminal  # released
    fleet.celery(concurrency=1, name="second")
    assert handle.result(timeout=60) == sum(range(12))
    assert set(fleet.bodies().values()) == {1}  # stopped between steps: none ran twice


def test_four_celery_workers_and_a_durably_worker_never_checkpoint_twice(
    redis_fleet: Fleet,
) -> None:
    fleet = redis_fleet
    for n in range(4):
        fleet.celery(concurrency=1, name=f"c{n}")
    fleet.durably()
    handles = [
        fleet.start(f"m{i}", "celery.steps", 3, 0.01, 0.2 if i % 3 == 0 else 0) for i in range(40)
    ]
    assert [h.result(timeout=120) for h in handles] == [3] * 40
    assert set(fleet.bodies().values()) == {1}
    for i in range(40):  # one journal entry per position, each written by one attempt
        journal = fleet.engine.store.journal(f"m{i}")
        assert [(e.seq, e.attempts) for e in journal if e.kind == "step"] == [
            (e.seq, 1) for e in journal if e.kind == "step"
        ]
        assert fleet.engine.history(f"m{i}") and not any(
            e.kind == "lease lost" for e in fleet.engine.history(f"m{i}")
        )
    assert all(m == [None, None] for m in fleet.published())


def test_queue_limits_priorities_and_routes_hold_under_celery(redis_fleet: Fleet) -> None:
    fleet = redis_fleet
    general = fleet.celery(
        concurrency=3, name="general", env={"CELERY_TEST_WORKFLOWS": "celery.steps"}
    )
    routed_worker = fleet.celery(
        concurrency=1,
        name="routed",
        queues=fleet.env["CELERY_TEST_ROUTED"],
        env={"CELERY_TEST_WORKFLOWS": "celery.routed"},
    )
    routed = fleet.start("r", "celery.routed")
    limited = [fleet.start(f"one{i}", "celery.steps", 1, 0.4, queue="one") for i in range(4)]
    assert routed.result(timeout=60) == 0
    assert [h.result(timeout=60) for h in limited] == [0] * 4
    began = fleet.began()
    assert began["r:0"][0] in routed_worker.pids() - {routed_worker.popen.pid}
    starts = sorted(began[f"one{i}:0"][1] for i in range(4))
    assert all(b - a >= 0.39 for a, b in itertools.pairwise(starts)), starts
    # One slot busy, then five low-priority runs and one high: the high one goes first.
    blocker = fleet.start("block", "celery.steps", 1, 1.5, queue="one")
    eventually(lambda: "block:0" in fleet.bodies(), 30, "the blocker started")
    low = [fleet.start(f"low{i}", "celery.steps", 1, 0.0, queue="one") for i in range(5)]
    high = fleet.start("high", "celery.steps", 1, 0.0, queue="one", priority=10)
    for handle in [blocker, *low, high]:
        handle.result(timeout=60)
    began = fleet.began()
    assert all(began["high:0"][1] < began[f"low{i}:0"][1] for i in range(5))
    assert general.popen.poll() is None and set(fleet.bodies().values()) == {1}


# -- the broker stopped ---------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PrivateRedis:
    """A Redis of this test's own, to stop and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        redis = shutil.which("redis-server")
        assert redis is not None, "redis-server is not installed"
        self.process = subprocess.Popen(
            [redis, "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        eventually(self._answers, 10, "redis started")

    def _answers(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
        except OSError:
            return False
        return True

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


def test_runs_progress_while_the_broker_is_down(tmp_path: Path, pg_store: str) -> None:
    redis = PrivateRedis()
    redis.start()
    try:
        with fleet_of(tmp_path, f"redis://127.0.0.1:{redis.port}/0", pg_store) as fleet:
            fleet.celery(concurrency=2)
            before = [fleet.start(f"b{i}", "celery.steps", 3, 0.0, 2.0) for i in range(3)]
            eventually(lambda: sum(fleet.bodies().values()) == 3, 30, "first steps ran")
            # Acknowledged first: a broker gone in the middle of an acknowledgement can
            # end Celery's worker process itself (kombu's Redis transport raises
            # AttributeError there), which no transport can help.
            fleet.processes[0].wait_for("succeeded in", 3)
            time.sleep(0.3)
            redis.stop()  # the runs sleep: their wake-ups cannot be delivered
            during = [fleet.start(f"o{i}", "celery.steps", 2) for i in range(2)]
            assert [h.result(timeout=60) for h in before] == [3] * 3
            assert [h.result(timeout=60) for h in during] == [1] * 2
            redis.start()
            after = fleet.start("a", "celery.steps", 2)
            assert after.result(timeout=60) == 1
            assert set(fleet.bodies().values()) == {1}
            assert "claiming from the database" in fleet.processes[0].text()
    finally:
        redis.stop()


def test_sqlite_serves_celery_workers_on_one_machine(tmp_path: Path) -> None:
    with fleet_of(tmp_path, REDIS.format(db=1), str(tmp_path / "durably.db")) as fleet:
        fleet.celery(concurrency=2)
        handles = [fleet.start(f"q{i}", "celery.steps", 2, 0.0, 0.3) for i in range(4)]
        assert [h.result(timeout=60) for h in handles] == [1] * 4
        assert set(fleet.bodies().values()) == {1}


# -- in this process ------------------------------------------------------------------
def test_settings_that_lose_or_hold_messages_are_named(caplog: pytest.LogCaptureFixture) -> None:
    app = Celery("settings", broker=RABBIT)
    with caplog.at_level(logging.WARNING, "durably.celery"):
        warn_about_settings(app)
    said = caplog.text
    assert "task_acks_late" in said and "worker_prefetch_multiplier" in said
    caplog.clear()
    app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1)
    with caplog.at_level(logging.WARNING, "durably.celery"):
        warn_about_settings(app)
    assert "task_reject_on_worker_lost" in caplog.text
    caplog.clear()
    app.conf.task_reject_on_worker_lost = True
    with caplog.at_level(logging.WARNING, "durably.celery"):
        warn_about_settings(app)
    assert caplog.text == ""


def test_bad_settings_are_refused() -> None:
    app = Celery("bad", broker=RABBIT)
    with pytest.raises(ValueError, match="sweep_interval"):
        CeleryTransport(app, sweep_interval=0)
    transport = CeleryTransport(app)
    with pytest.raises(TypeError, match="Engine"):
        transport.attach(object())
    with pytest.raises(RuntimeError, match="transport="):
        transport.publisher  # noqa: B018


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_heartbeats_keep_a_step_longer_than_the_lease(redis_fleet: Fleet, pool: str) -> None:
    fleet = redis_fleet
    fleet.celery(concurrency=2, pool=pool)
    handle = fleet.start("long", "celery.steps", 1, 6.5)  # a lease is 5 s
    assert handle.result(timeout=60) == 0
    assert fleet.bodies() == Counter({"long:0": 1})
    assert not any(e.kind == "lease lost" for e in fleet.engine.history("long"))


def test_without_the_extra_the_import_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "celery", None)
    for name in [m for m in sys.modules if m.startswith("durably.contrib.celery")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ImportError, match=re.escape("pip install 'durably[celery]'")):
        importlib.import_module("durably.contrib.celery")
