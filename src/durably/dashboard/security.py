"""Who may look and act: a one-time token exchanged for a signed cookie, or the
application's own ``auth(request)``; CSRF tokens and an Origin check on every
action; headers that keep the pages from being framed or fed foreign scripts."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION = "durably_session"
CSRF = "durably_csrf"
#: Seconds a session cookie is honoured.
SESSION_TTL = 12 * 3600
HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",  # "no-referrer" would make a form's Origin "null"
    "cache-control": "no-store",
}

Auth = Callable[[Request], bool | Awaitable[bool]]


class Guard:
    """The dashboard's doorkeeper (an ASGI middleware around its routes).

    With ``auth``, that callable decides for each request. Otherwise a request needs
    the session cookie, which ``?token=`` buys once: a token made here (printed by
    ``durably dashboard``) works one time; a configured one (``DURABLY_DASHBOARD_TOKEN``)
    every time.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        reusable: bool,
        auth: Auth | None,
        secret: bytes | None = None,
    ) -> None:
        self.app = app
        self.token = token
        self.reusable = reusable
        self.auth = auth
        self.secret = secret or secrets.token_bytes(32)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        response = await self._refusal(request)
        if response is not None:
            await _with_headers(response)(scope, receive, send)
            return
        csrf = request.cookies.get(CSRF) or secrets.token_urlsafe(24)
        scope.setdefault("state", {})["csrf"] = csrf

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.encode(), v.encode()) for k, v in HEADERS.items()]
                if CSRF not in request.cookies:
                    headers.append((b"set-cookie", _cookie(CSRF, csrf, http_only=False)))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _refusal(self, request: Request) -> Response | None:
        """Why this request may not go on (a response saying so), or None."""
        if request.url.path.startswith("/static/"):
            return None
        given = request.query_params.get("token")
        if given is not None and self.auth is None:
            return self._exchange(request, given)
        if not await self._allowed(request):
            return PlainTextResponse(
                "401: open the dashboard with the URL `durably dashboard` printed "
                "(its token is exchanged for a cookie of this browser)",
                status_code=401,
            )
        if request.method not in ("GET", "HEAD") and not _same_site(request):
            return PlainTextResponse("403: a form of another site, or no CSRF token", 403)
        return None

    async def _allowed(self, request: Request) -> bool:
        if self.auth is not None:
            verdict = self.auth(request)
            if not isinstance(verdict, bool):
                verdict = await verdict
            return verdict is True
        return self._valid(request.cookies.get(SESSION, ""))

    def _exchange(self, request: Request, given: str) -> Response:
        if self.token is None or not hmac.compare_digest(given, self.token):
            return PlainTextResponse("401: this token is not (or no longer) valid", 401)
        if not self.reusable:
            self.token = None  # a one-time token: the cookie is what opens the door now
        target = request.url.remove_query_params("token")
        path = "/" + target.path.lstrip("/")  # '//evil.example' is another site's address
        response = RedirectResponse(path + (f"?{target.query}" if target.query else ""))
        response.headers.append("set-cookie", _cookie(SESSION, self._signed()).decode())
        return response

    def _signed(self) -> str:
        payload = f"{int(time.time()) + SESSION_TTL}.{secrets.token_urlsafe(16)}"
        mac = hmac.new(self.secret, payload.encode(), hashlib.sha256).hexdigest()
        return f"{payload}.{mac}"

    def _valid(self, cookie: str) -> bool:
        payload, _, mac = cookie.rpartition(".")
        expected = hmac.new(self.secret, payload.encode(), hashlib.sha256).hexdigest()
        if not payload or not hmac.compare_digest(mac, expected):
            return False
        expires = payload.partition(".")[0]
        return expires.isdigit() and int(expires) > time.time()


def _same_site(request: Request) -> bool:
    """An action must come from this dashboard's own page: its Origin (or Referer) is
    this host, and it carries the CSRF cookie's value (checked by the action)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return False
    here = _address("//" + request.headers.get("host", ""), request.url.scheme)
    return here is not None and _address(origin, request.url.scheme) == here


def _address(url: str, scheme: str) -> str | None:
    """``host:port`` of a URL (an IPv6 host too), its port the default of its scheme
    (else ``scheme``'s) when it names none; None when malformed."""
    try:
        seen = urlsplit(url)
        return f"{seen.hostname}:{seen.port or _default_port(seen.scheme or scheme)}"
    except ValueError:  # a port that is no number, a bracket left open
        return None


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def csrf_ok(request: Request, form: Any) -> bool:
    """The form's (or header's) CSRF token is the cookie's (double submit)."""
    sent = form.get("csrf") or request.headers.get("x-csrf-token") or ""
    cookie = request.cookies.get(CSRF, "")
    return bool(cookie) and hmac.compare_digest(str(sent), cookie)


def _cookie(name: str, value: str, *, http_only: bool = True) -> bytes:
    flags = "; Path=/; SameSite=Strict" + ("; HttpOnly" if http_only else "")
    return f"{name}={value}{flags}".encode()


def _with_headers(response: Response) -> Response:
    for key, value in HEADERS.items():
        response.headers[key] = value
    return response
