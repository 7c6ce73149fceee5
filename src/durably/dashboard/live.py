"""Pages that update while open: ``/live?watch=...`` is a stream of server-sent events
that says ``changed`` when what the page shows changed. It looks every half second,
and at once when PostgreSQL announces a run runnable or finished (LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from durably.dashboard.pages import WINDOWS, BadFilter, Totals, engine_of, filters
from durably.engine import Engine
from durably.errors import RunNotFound

#: Seconds between two looks at what a page shows.
LOOK = 0.5
#: Seconds between two comments that keep an idle stream open through proxies.
KEEPALIVE = 15.0


class Pulse:
    """Counts the store's announcements (PostgreSQL), so streams look at once."""

    def __init__(self, engine: Engine) -> None:
        self.beats = 0
        self._lock = threading.Lock()
        self._stop = engine.store.listen(self._beat, lambda _run: self._beat())

    def _beat(self) -> None:
        with self._lock:
            self.beats += 1

    def close(self) -> None:
        self._stop()


def _digest(engine: Engine, watch: str, given: dict[str, Any], totals: Totals) -> Any:
    """What a page of this kind shows, in short: a change of it is a change of the page."""
    if watch.startswith("run:"):
        try:
            run = engine.get_run(watch[4:])
        except RunNotFound:
            return None
        pending = len(engine.store.pending_signals(run.run_id))  # a signal sent to it
        return (run.status, run.updated_at, run.current_step, run.attempts, pending)
    if watch == "runs":
        return [(r.run_id, r.status, r.updated_at) for r in engine.list_runs(limit=50, **given)]
    if watch == "schedules":
        return [(s.id, s.paused, s.next_fire, s.last_run_id) for s in engine.schedules.list()]
    return totals.get(engine, given.get("window", "24h"))


async def stream(request: Request) -> Response:
    engine = engine_of(request)
    watch = request.query_params.get("watch", "")
    try:
        given = filters(request) if watch == "runs" else {}
        if watch == "overview":
            window = request.query_params.get("window", "24h")
            given = {"window": window if window in WINDOWS else "24h"}
    except BadFilter as exc:
        return PlainTextResponse(f"400: {exc}", 400)
    pulse: Pulse | None = request.app.state.pulse
    # Before the stream opens: the page refreshes once it is open (what changed since it
    # was rendered), and every change after this look is a change the stream tells.
    totals: Totals = request.app.state.totals
    first = await run_in_threadpool(_digest, engine, watch, given, totals)

    async def events() -> AsyncIterator[str]:
        clock = asyncio.get_running_loop().time
        seen = first
        beats = pulse.beats if pulse else 0
        looked = said = clock()
        yield ": watching\n\n"
        while not await request.is_disconnected():
            await asyncio.sleep(LOOK / 5)
            now_beats = pulse.beats if pulse else 0
            if now_beats != beats or clock() - looked >= LOOK:
                beats, looked = now_beats, clock()
                now = await run_in_threadpool(_digest, engine, watch, given, totals)
                if now != seen:
                    seen, said = now, clock()
                    yield "event: changed\ndata: {}\n\n"
            if clock() - said >= KEEPALIVE:
                said = clock()
                yield ": still here\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")
