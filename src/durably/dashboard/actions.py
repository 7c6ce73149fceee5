"""What the dashboard does: cancel, retry, fork, signal, bulk cancel or retry by filter
(confirmed with the count first), and a schedule's pause, resume and trigger. Every
action is a POST with a CSRF token; a read-only dashboard has none (405)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from durably.dashboard.pages import BadFilter, base_of, engine_of, filters, render
from durably.dashboard.security import csrf_ok
from durably.engine import Engine
from durably.errors import DurablyError, RunNotFound
from durably.records import RunStatus

#: Runs a bulk action acts on at most (narrow the filter for more).
BULK_LIMIT = 10_000
_LIVE = [status for status in RunStatus if not status.terminal]


async def _form(request: Request) -> dict[str, Any] | Response:
    """The action's form, or the response refusing it."""
    if request.app.state.read_only:
        return PlainTextResponse("405: this dashboard is read-only", 405)
    form = dict(await request.form())
    if not csrf_ok(request, form):
        return PlainTextResponse("403: missing or wrong CSRF token", 403)
    return form


def _back(request: Request, to: str) -> Response:
    return RedirectResponse(base_of(request) + to, status_code=303)


async def _on_run(request: Request, act: Callable[[Engine, str, dict[str, Any]], str]) -> Response:
    form = await _form(request)
    if isinstance(form, Response):
        return form
    run_id = request.path_params["run_id"]
    try:
        to = await run_in_threadpool(act, engine_of(request), run_id, form)
    except RunNotFound:
        return PlainTextResponse(f"404: no run with id {run_id!r}", 404)
    except (DurablyError, ValueError, TypeError) as exc:
        return PlainTextResponse(f"400: {type(exc).__name__}: {exc}", 400)
    return _back(request, to)


def _cancel(engine: Engine, run_id: str, form: dict[str, Any]) -> str:
    engine.cancel(run_id, form.get("reason") or "cancelled from the dashboard")
    return f"/runs/{quote(run_id, safe='')}"


def _retry(engine: Engine, run_id: str, form: dict[str, Any]) -> str:
    engine.retry(run_id)
    return f"/runs/{quote(run_id, safe='')}"


def _fork(engine: Engine, run_id: str, form: dict[str, Any]) -> str:
    try:
        position = int(form.get("from_step", ""))
    except ValueError:
        raise ValueError("fork: from_step must be a journal position (a number)") from None
    return f"/runs/{quote(engine.fork(run_id, position), safe='')}"


def _signal(engine: Engine, run_id: str, form: dict[str, Any]) -> str:
    name = str(form.get("name", "")).strip()
    try:
        payload = json.loads(str(form.get("payload") or "null"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"the payload is not JSON: {exc}") from None
    except RecursionError:
        raise ValueError("the payload is nested too deeply") from None
    engine.send_signal(run_id, name, payload)
    return f"/runs/{quote(run_id, safe='')}"


async def cancel(request: Request) -> Response:
    return await _on_run(request, _cancel)


async def retry(request: Request) -> Response:
    return await _on_run(request, _retry)


async def fork(request: Request) -> Response:
    return await _on_run(request, _fork)


async def signal(request: Request) -> Response:
    return await _on_run(request, _signal)


async def bulk(request: Request) -> Response:
    """Cancel or retry every run the filter selects: first the count to confirm, then,
    with ``confirm`` equal to it, the action."""
    form = await _form(request)
    if isinstance(form, Response):
        return form
    action = form.get("action")
    if action not in ("cancel", "retry"):
        return PlainTextResponse("400: action must be cancel or retry", 400)
    try:
        given = filters(request)
    except BadFilter as exc:
        return PlainTextResponse(f"400: {exc}", 400)
    # The runs of the filter the action can change: cancel those not ended, retry the
    # failed ones. A filter of none of those selects no run, never all of them.
    able = _LIVE if action == "cancel" else [RunStatus.FAILED]
    given["status"] = [s for s in given.get("status", able) if s in able]
    engine = engine_of(request)
    count = 0
    if given["status"]:
        count = await run_in_threadpool(lambda: engine.count_runs(**given))
    if form.get("confirm") != str(count) or not count:
        query, limit = request.url.query, BULK_LIMIT
        return render(request, "confirm.html", action=action, count=count, query=query, limit=limit)
    done = await run_in_threadpool(_act_on_all, engine, action, given)
    return _back(request, f"/runs?{request.url.query}&done={action}:{done}")


def _act_on_all(engine: Engine, action: str, given: dict[str, Any]) -> int:
    done, cursor = 0, None
    while done < BULK_LIMIT:
        page = engine.list_runs(limit=500, cursor=cursor, **given)
        act = engine.cancel if action == "cancel" else engine.retry
        for found in page:
            try:
                act(found.run_id)
                done += 1
            except DurablyError:
                continue  # it ended, or was retried, meanwhile
        cursor = page.cursor
        if cursor is None:
            break
    return done


async def schedule(request: Request) -> Response:
    form = await _form(request)
    if isinstance(form, Response):
        return form
    schedule_id, what = request.path_params["schedule_id"], request.path_params["what"]
    schedules = engine_of(request).schedules
    acts = {"pause": schedules.pause, "resume": schedules.resume, "trigger": schedules.trigger}
    if what not in acts:
        return PlainTextResponse("404: no such action", 404)
    try:
        await run_in_threadpool(acts[what], schedule_id)
    except DurablyError as exc:
        return PlainTextResponse(f"400: {exc}", 400)
    return _back(request, "/schedules")
