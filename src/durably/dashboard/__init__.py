"""durably's web dashboard: runs, their timelines and actions, on the engine's store.

``durably dashboard`` serves it; :func:`app` is the ASGI application for mounting in
an existing web application. It needs the extra: ``pip install 'durably[dashboard]'``
(Starlette, Jinja2, uvicorn, python-multipart); its scripts and styles ship inside the
package (no CDN, no build). It reads and acts through the engine's API only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

try:
    import jinja2  # noqa: F401
    import python_multipart  # noqa: F401
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"durably's dashboard needs {exc.name}: pip install 'durably[dashboard]'"
    ) from exc

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from durably.dashboard.security import Auth
    from durably.engine import Engine

__all__ = ["app"]


def app(
    engine: Engine,
    *,
    auth: Auth | None = None,
    read_only: bool = False,
    token: str | None = None,
    reusable_token: bool = True,
) -> Starlette:
    """The dashboard as an ASGI application over ``engine`` (a client is enough: it
    need not execute runs).

    Args:
        auth: ``auth(request) -> bool`` (or an awaitable of one), the application's own
            login; when given, no token is asked for.
        read_only: no action at all (every POST answers 405).
        token: the secret a browser shows once (``?token=``) to get its session cookie;
            without ``auth`` and without a token, nobody gets in.
        reusable_token: ``False``: the token works once (as ``durably dashboard``'s
            printed one does).
    """
    import contextlib
    from collections.abc import AsyncIterator
    from pathlib import Path

    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from durably.dashboard import actions, live, pages
    from durably.dashboard.security import Guard

    routes = [
        Route("/", pages.overview),
        Route("/runs", pages.runs),
        Route("/runs/bulk", actions.bulk, methods=["POST"]),
        Route("/runs/{run_id}", pages.run),
        Route("/runs/{run_id}/timeline", pages.timeline),
        Route("/runs/{run_id}/{which:str}.json", pages.payload),
        Route("/runs/{run_id}/cancel", actions.cancel, methods=["POST"]),
        Route("/runs/{run_id}/retry", actions.retry, methods=["POST"]),
        Route("/runs/{run_id}/fork", actions.fork, methods=["POST"]),
        Route("/runs/{run_id}/signal", actions.signal, methods=["POST"]),
        Route("/schedules", pages.schedules),
        Route("/schedules/{schedule_id}/{what}", actions.schedule, methods=["POST"]),
        Route("/live", live.stream),
        Mount("/static", StaticFiles(directory=str(Path(__file__).parent / "static"))),
    ]
    guard = Middleware(Guard, token=token, reusable=reusable_token, auth=auth)

    @contextlib.asynccontextmanager
    async def lifespan(web: Starlette) -> AsyncIterator[None]:
        pulse = web.state.pulse = live.Pulse(engine)  # PostgreSQL's announcements
        try:
            yield
        finally:
            pulse.close()

    web = Starlette(routes=routes, middleware=[guard], lifespan=lifespan)
    web.state.engine = engine
    web.state.read_only = read_only
    web.state.totals = pages.Totals()
    web.state.pulse = None  # until the server starts it
    return web
