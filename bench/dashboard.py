"""The dashboard's server time on a big store: the run list over 1,000,000 runs and the
pages of a 10,000-step run.

    .venv/bin/python bench/dashboard.py [--backend sqlite,postgres] [--runs 1000000]
                                        [--repeat 7]

For each backend: N runs are written through the store (``Store.create_runs``, in
batches), one workflow of 10,000 steps is executed, and the dashboard is served by
uvicorn on this machine. Each page is then fetched ``--repeat`` times over loopback
after one warm-up; the median and the slowest time to the last byte are printed
(loopback adds well under a millisecond). Target: under 300 ms each for the run list
and the 10,000-step run. The overview's counts (``queue_stats`` over every run not
ended) are read at most every 5 s: the warm-up's time is that read.

Needs PostgreSQL at postgresql://postgres@127.0.0.1/test for the postgres backend.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

import durably
from durably.dashboard import app
from durably.records import NewRun, new_run_id

PG = "postgresql://postgres@127.0.0.1/test"
TOKEN = "bench-token-long-enough"
BATCH = 20_000


@durably.step(name="bench.tick")
def tick(i: int) -> int:
    return i


@durably.workflow(name="bench.long")
def long(n: int) -> int:
    return sum(tick(i) for i in range(n))


@contextmanager
def store_url(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as where:
            yield os.path.join(where, "dash.db")
        return
    import psycopg

    schema = f"benchdash_{os.getpid()}"
    try:
        yield f"{PG}?schema={schema}"
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def fill(engine: durably.Engine, runs: int) -> None:
    """``runs`` runs of a workflow no worker executes (they stay pending), some delayed."""
    store = engine.store
    for start in range(0, runs, BATCH):
        news = [
            NewRun(new_run_id(), "bench.idle", f'{{"args":[{i}],"kwargs":{{}}}}', delay=i % 7)
            for i in range(start, min(runs, start + BATCH))
        ]
        store.transact(lambda tx, news=news: store.create_runs(tx, news))


def fetch(url: str, cookie: str) -> float:
    began = time.perf_counter()
    request = urllib.request.Request(url, headers={"Cookie": cookie})
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()
        assert response.status == 200, response.status
    return time.perf_counter() - began


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(backend: str, runs: int, repeat: int) -> None:
    with store_url(backend) as url:
        began = time.monotonic()
        with durably.Engine(url, workflows=["bench.long"]) as engine:
            fill(engine, runs)
            filled = time.monotonic() - began
            long_id = engine.start_workflow(long, 10_000).run_id
            engine.handle(long_id).result(timeout=600)
        print(f"{backend}: {runs:,} runs written in {filled:.1f}s, a 10,000-step run executed")
        client = durably.Engine(url, execute=False)
        port = free_port()
        config = uvicorn.Config(
            app(client, token=TOKEN), host="127.0.0.1", port=port, log_level="warning"
        )
        server = uvicorn.Server(config)
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.01)
        base = f"http://127.0.0.1:{port}"
        opener = urllib.request.build_opener(_NoRedirect())
        cookie = ""
        try:
            opener.open(f"{base}/?token={TOKEN}")
        except urllib.error.HTTPError as exc:  # the 307 that sets the session cookie
            cookie = exc.headers["set-cookie"].split(";")[0]
        page = (
            urllib.request.urlopen(
                urllib.request.Request(f"{base}/runs", headers={"Cookie": cookie})
            )
            .read()
            .decode()
        )
        cursor = re.search(r"cursor=([^\"&]+)", page)
        pages = {
            "runs, first page": "/runs",
            "runs, next page": f"/runs?cursor={cursor.group(1)}" if cursor else "/runs",
            "runs of one workflow pattern": "/runs?workflow=bench.*",
            "runs pending, since 1h": "/runs?status=pending&since=1h",
            "overview": "/",
            "10,000-step run: detail": f"/runs/{long_id}",
            "10,000-step run: timeline page 25": f"/runs/{long_id}/timeline?page=25",
            "10,000-step run: last timeline page": f"/runs/{long_id}/timeline?page=50",
        }
        for name, path in pages.items():
            cold = fetch(base + path, cookie)  # warm-up
            if path == "/":
                print(f"  {'overview, its counts read':38s} once    {cold * 1000:7.1f} ms")
                name = "overview, counts reused (5 s)"
            times = [fetch(base + path, cookie) for _ in range(repeat)]
            median = statistics.median(times) * 1000
            print(f"  {name:38s} median {median:7.1f} ms   max {max(times) * 1000:7.1f} ms")
        server.should_exit = True
        client.close()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="sqlite,postgres")
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    options = parser.parse_args()
    for backend in options.backend.split(","):
        measure(backend, options.runs, options.repeat)


if __name__ == "__main__":
    main()
