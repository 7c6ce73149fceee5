"""The pages: overview, runs (every filter of ``durably runs list``), a run, its
timeline, schedules. Each reads through the engine's API; none keeps data of its own."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from durably.dashboard.timeline import PAGE, chart
from durably.durations import parse_duration
from durably.engine import Engine
from durably.errors import RunNotFound
from durably.records import Run, RunStatus

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
#: Characters of a payload shown on a page (the rest behind a download link).
SHOWN = 20_000
#: Seconds the overview's counts are reused for.
TOTALS_TTL = 5.0
#: Journal positions the run page reads (its signals and compensations among them).
RECENT = 200
#: History events the run page shows (the newest).
HISTORY = 100
FILTERS = ("workflow", "status", "queue", "since", "until", "parent", "key")


class BadFilter(ValueError):
    """A filter of the runs page the engine cannot apply (shown, not raised)."""


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    context.update(
        request=request,
        csrf=request.state.csrf,
        read_only=request.app.state.read_only,
        nav=name.partition(".")[0],
        base=base_of(request),
    )
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def base_of(request: Request) -> str:
    """The path the dashboard is mounted at (``""`` when it is the whole app)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


#: The windows the overview counts ended runs over.
WINDOWS = {"1h": 3600, "24h": 86400, "7d": 7 * 86400}


def overview(request: Request) -> Response:
    window = request.query_params.get("window", "24h")
    if window not in WINDOWS:
        window = "24h"
    totals = request.app.state.totals.get(engine_of(request), window)
    return render(request, "overview.html", window=window, windows=list(WINDOWS), **totals)


class Totals:
    """The overview's counts, read at most every :data:`TOTALS_TTL` seconds: over a
    backlog of a million runs they take seconds, and every open overview asks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[str, tuple[float, dict[str, Any]]] = {}  # by window

    def get(self, engine: Engine, window: str = "24h") -> dict[str, Any]:
        with self._lock:
            at, last = self._kept.get(window, (-TOTALS_TTL, {}))
            if time.monotonic() - at >= TOTALS_TTL:
                last = _totals(engine, WINDOWS[window])
                self._kept[window] = (time.monotonic(), last)
            return last


def _totals(engine: Engine, window: float) -> dict[str, Any]:
    now = engine.store.now()
    queues: dict[str, dict[str, Any]] = {}
    live: dict[str, int] = {}
    for queue, status, count, oldest in engine.store.queue_stats():
        row = queues.setdefault(queue, {"counts": {}, "oldest": None})
        row["counts"][status] = count
        live[status] = live.get(status, 0) + count
        if oldest is not None and (row["oldest"] is None or oldest < row["oldest"]):
            row["oldest"] = oldest
    ended = [RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED]
    day = {s.value: engine.count_runs(status=s, since=now - window) for s in ended}
    workers = engine.store.live_workers()
    known = {w.worker_id for w in workers}
    stuck = [(owner, n) for owner, n in engine.store.running_counts().items() if owner not in known]
    unserved = [
        kind
        for kind in engine.store.waiting_kinds()
        if not any(w.executes(kind[0], kind[1]) for w in workers)
    ]
    return {
        "live": {s.value: live.get(s.value, 0) for s in RunStatus if not s.terminal},
        "day": day,
        "last_hour": engine.count_runs(status=RunStatus.COMPLETED, since=now - 3600),
        "queues": sorted(queues.items()),
        "workers": workers,
        "stuck": stuck,
        "unserved": unserved,
        "now": now,
    }


def filters(request: Request) -> dict[str, Any]:
    """The runs page's filters from its URL, as ``list_runs`` takes them."""
    q = request.query_params
    given: dict[str, Any] = {}
    for name in ("workflow", "queue", "parent", "key"):
        if q.get(name):
            given[name] = q[name]
    statuses = [s for s in q.getlist("status") if s]
    if statuses:
        try:
            given["status"] = [RunStatus(s) for s in statuses]
        except ValueError as exc:
            raise BadFilter(f"unknown status: {exc}") from exc
    for name in ("since", "until"):
        if q.get(name):
            given[name] = _moment(q[name], name)
    return given


def _moment(text: str, name: str) -> datetime:
    """An ISO date or time, or a duration back from now (``2h``, ``7d``)."""
    try:
        stamp = datetime.fromisoformat(text)
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    except ValueError:
        pass
    try:
        return datetime.fromtimestamp(datetime.now(UTC).timestamp() - parse_duration(text), UTC)
    except ValueError as exc:
        raise BadFilter(f"{name}: not a date, time or duration: {text!r}") from exc


def runs(request: Request) -> Response:
    engine = engine_of(request)
    try:
        given = filters(request)
        page = engine.list_runs(limit=50, cursor=request.query_params.get("cursor"), **given)
    except (BadFilter, ValueError) as exc:
        return render(request, "runs.html", 400, error=str(exc), runs=[], cursor=None, q={})
    q: dict[str, Any] = {name: request.query_params.get(name, "") for name in FILTERS}
    q["status"] = request.query_params.getlist("status")
    kept = [(k, v) for k, v in request.query_params.multi_items() if k in FILTERS and v]
    return render(
        request,
        "runs.html",
        runs=list(page),
        cursor=page.cursor,
        q=q,
        kept=kept,
        statuses=[s.value for s in RunStatus],
        error=None,
    )


def _the_run(request: Request) -> Run | Response:
    """The run the URL names, or the page saying there is none."""
    run_id = request.path_params["run_id"]
    try:
        return engine_of(request).get_run(run_id)
    except (RunNotFound, ValueError):  # ValueError: an id no store holds (a NUL in it)
        return render(request, "missing.html", 404, run_id=run_id)


def run(request: Request) -> Response:
    engine, found = engine_of(request), _the_run(request)
    if isinstance(found, Response):
        return found
    run_id = found.run_id
    positions = engine.count_steps(run_id)
    recent = engine.steps(run_id, max(0, positions - RECENT))  # never a whole long journal
    children = list(engine.list_runs(parent=run_id, limit=100))
    events = engine.store.events(run_id)
    return render(
        request,
        "run.html",
        run=found,
        waiting=engine.waiting_for(run_id),
        input=_shown(found.input),
        output=_shown(found.output),
        steps=recent[-20:],
        positions=positions,
        recent=len(recent),
        signals=[s for s in recent if s.kind == "signal"],
        pending=[(name, _shown(value)) for name, value in engine.pending_signals(run_id)],
        compensations=[s for s in recent if s.name.startswith("compensate:")],
        children=children,
        events=[(k, _shown(json.loads(v) if v else None), at) for k, v, at in events],
        history=engine.history(run_id, limit=HISTORY),
        terminal=found.status.terminal,
    )


def timeline(request: Request) -> Response:
    engine, found = engine_of(request), _the_run(request)
    if isinstance(found, Response):
        return found
    try:
        page = int(request.query_params.get("page", "1"))
    except ValueError:
        page = 1
    total = engine.count_steps(found.run_id)
    page = min(max(1, page), max(1, -(-total // PAGE)))
    shown = engine.steps(found.run_id, (page - 1) * PAGE, PAGE)
    return render(request, "timeline.html", run=found, chart=chart(shown, page, total))


def payload(request: Request) -> Response:
    """A run's input or output in full, as a JSON download."""
    engine = engine_of(request)
    which = request.path_params["which"]
    if which not in ("input", "output"):
        return Response("no such payload", 404, media_type="text/plain")
    try:
        found = engine.get_run(request.path_params["run_id"])
    except (RunNotFound, ValueError):  # ValueError: an id no store holds (a NUL in it)
        return Response("no such run", 404, media_type="text/plain")
    value = found.input if which == "input" else found.output
    name = quote(f"{found.run_id}-{which}.json", safe="")  # any id: RFC 6266's filename*
    disposition = f"attachment; filename=\"{which}.json\"; filename*=UTF-8''{name}"
    return Response(
        json.dumps(value, indent=2),
        media_type="application/json",
        headers={"content-disposition": disposition},
    )


def schedules(request: Request) -> Response:
    return render(request, "schedules.html", schedules=engine_of(request).schedules.list())


def _shown(value: Any) -> dict[str, Any]:
    """A payload as indented JSON, cut at :data:`SHOWN` characters."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:  # a lone surrogate: shown escaped, the page still loads
            text = json.dumps(value, indent=2, default=str)
    return {"text": text[:SHOWN], "cut": len(text) > SHOWN, "size": len(text)}
