"""Real Celery worker processes (and ``durably worker`` ones) for the transport's tests,
each in a process group of its own so a test can SIGKILL all of it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

APP = "tests.integration.celery.app"
ROOT = Path(__file__).resolve().parents[3]  # where ``tests`` is imported from
READY = "durably serves Celery's wake-ups"


class Process:
    """One worker command running, its output in ``log``."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("w")
        path = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self.popen = subprocess.Popen(
            argv,
            env={**env, "PYTHONPATH": path},
            cwd=ROOT,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, what: str, count: int = 1, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.text().count(what) < count:
            if self.popen.poll() is not None:
                raise AssertionError(f"the worker exited:\n{self.text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what!r} x{count} in time:\n{self.text()[-3000:]}")
            time.sleep(0.05)

    def pids(self) -> set[int]:
        """The group's processes (the worker and its pool's children)."""
        found = subprocess.run(
            ["pgrep", "-g", str(self.popen.pid)], capture_output=True, text=True, check=False
        )
        return {int(p) for p in found.stdout.split()}

    def terminate(self, timeout: float = 30.0) -> int:
        """A warm shutdown (SIGTERM): the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the whole group: nothing of it gets to clean up."""
        try:
            if self.popen.poll() is None or self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)
        finally:
            self._out.close()

    def ready(self, what: str, count: int) -> Process:
        """Once ``what`` was logged ``count`` times; killed (and raised) if it never is."""
        try:
            self.wait_for(what, count)
        except BaseException:
            self.kill()
            raise
        return self


def celery_worker(
    env: dict[str, str],
    log: Path,
    *,
    concurrency: int = 2,
    pool: str = "prefork",
    name: str = "w",
    queues: str | None = None,
) -> Process:
    argv = [sys.executable, "-m", "celery", "-A", APP, "worker", "--without-gossip"]
    argv += ["--without-mingle", "--without-heartbeat", "-P", pool, "-c", str(concurrency)]
    argv += ["-n", f"{name}@%h", "--loglevel", "INFO"]
    if queues is not None:
        argv += ["-Q", queues]
    return Process(argv, env, log).ready(READY, 1 if pool != "prefork" else concurrency)


def durably_worker(env: dict[str, str], log: Path) -> Process:
    argv = [sys.executable, "-m", "durably", "worker", "--app", f"{APP}:engine"]
    return Process(argv, env, log).ready("started", 1)


def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {timeout}s: {what}")
        time.sleep(0.05)
