"""The dashboard in a real browser (Debian's Chromium through Playwright) against a real
server on a real store with real runs; its safety over plain HTTP."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import durably

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")
playwright = pytest.importorskip("playwright.sync_api")

from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.routing import Mount  # noqa: E402

from durably.dashboard import app  # noqa: E402
from durably.dashboard.live import _digest  # noqa: E402
from durably.dashboard.pages import Totals  # noqa: E402
from durably.dashboard.security import _same_site  # noqa: E402
from durably.testing import TestEngine  # noqa: E402
from tests import postgres  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
TOKEN = "a-test-token-long-enough"
SHOTS = os.environ.get("DURABLY_SCREENSHOTS")  # a directory: save the main pages there


@durably.step(name="dash.charge", retries=0)
def charge(order: str) -> str:
    if order.startswith("bad"):
        raise ValueError(f"card declined for {order}")
    return f"receipt-{order}"


@durably.step(name="dash.shout")
def shout(text: str) -> str:
    return text


@durably.step(name="dash.tick")
def tick(i: int) -> int:
    return i


@durably.workflow(name="dash.order")
def order(name: str) -> str:
    shout(f"ordering {name}")
    return charge(name)


@durably.workflow(name="dash.approval")
def approval(name: str) -> Any:
    shout(f"waiting for approval of {name}")
    return durably.wait_for_signal("approved")


@durably.workflow(name="dash.script")
def script() -> str:
    return shout("<script>window.pwned = 1</script><b>bold</b>")


@durably.workflow(name="dash.long")
def long(n: int) -> int:
    return sum(tick(i) for i in range(n))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    def __init__(self, engine: durably.Engine, url: str) -> None:
        self.engine, self.url = engine, url


@contextlib.contextmanager
def serving(engine: durably.Engine, mount: str = "", **options: Any) -> Iterator[Served]:
    """The dashboard of ``engine`` on a real server of its own (under ``mount``, a path
    of a host application, if given)."""
    port = _free_port()
    web: Any = app(engine, token=TOKEN, **options)
    if mount:
        web = Starlette(routes=[Mount(mount, app=web)])
    server = uvicorn.Server(uvicorn.Config(web, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        _until(lambda: server.started)
        yield Served(engine, f"http://127.0.0.1:{port}{mount}")
    finally:
        server.should_exit = True
        thread.join(5)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """The dashboard of a launched engine on each backend, for every test of the module."""
    if request.param == "sqlite":
        url, schema = str(tmp_path_factory.mktemp("dash") / "durably.db"), None
    else:
        postgres.require()
        schema = postgres.new_schema()
        url = postgres.schema_url(schema)
    engine = durably.Engine(url, poll_interval=0.05, shutdown_grace=1)
    with engine, serving(engine) as running:
        yield running
    if schema is not None:
        postgres.drop_schema(schema)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, served: Served) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(30_000)  # a loaded CI machine: live pages follow within a second
    tab.goto(f"{served.url}/?token={TOKEN}")  # the token buys this browser its cookie
    yield tab
    context.close()


def _shot(tab: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(Path(SHOTS) / f"dashboard-{name}.png"), full_page=False)


# -- in the browser --------------------------------------------------------------------
def test_list_and_filter_runs(page: Any, served: Served) -> None:
    good = served.engine.start_workflow(order, "lamp")
    bad = served.engine.start_workflow(order, "bad-card")
    assert good.result(timeout=10) == "receipt-lamp"
    with pytest.raises(durably.WorkflowFailed):
        bad.result(timeout=10)
    page.goto(f"{served.url}/?window=1h")
    page.get_by_role("heading", name="Overview").wait_for()
    cards = page.locator(".cards").inner_text()
    assert "failed 1h" in cards.replace("\n", " ")
    assert "Workers" in page.inner_text("main") and served.engine.executor is not None
    assert served.engine.executor.owner in page.inner_text("main")  # the live worker
    _shot(page, "overview")
    page.goto(f"{served.url}/runs")
    assert page.locator("#runs tbody tr").count() >= 2
    page.locator("input[name=status][value=failed]").check()
    page.fill("input[name=workflow]", "dash.*")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"status=failed"))
    assert "workflow=dash.%2A" in page.url or "workflow=dash.*" in page.url
    rows = page.locator("#runs tbody tr")
    assert rows.count() >= 1
    assert all("failed" in rows.nth(i).inner_text() for i in range(rows.count()))
    assert bad.run_id in page.locator("#runs").inner_text()
    assert good.run_id not in page.locator("#runs").inner_text()
    _shot(page, "runs")


def test_a_failed_run_shows_its_traceback(page: Any, served: Served) -> None:
    bad = served.engine.start_workflow(order, "bad-visa")
    with pytest.raises(durably.WorkflowFailed):
        bad.result(timeout=10)
    page.goto(f"{served.url}/runs/{bad.run_id}")
    error = page.locator("#error")
    assert "StepFailed" in error.inner_text()
    assert "card declined for bad-visa" in error.inner_text()
    assert "Traceback" in page.locator("pre.traceback").inner_text()
    _shot(page, "run")


def test_a_cancel_shows_live_and_the_button_cancels(page: Any, served: Served) -> None:
    waiting = served.engine.start_workflow(approval, "from-outside")
    _until(lambda: served.engine.get_run(waiting.run_id).status == "waiting")
    served.engine.send_signal(waiting.run_id, "unrelated", {"n": 1})  # nobody waits for it
    assert served.engine.pending_signals(waiting.run_id) == [("unrelated", {"n": 1})]
    page.goto(f"{served.url}/runs/{waiting.run_id}")
    # The send woke the run to look at its mailbox: it waits again a moment later.
    page.locator("#waiting", has_text="waiting for signal 'approved'").wait_for()
    assert "unrelated" in page.locator("#pending").inner_text()
    served.engine.cancel(waiting.run_id)  # elsewhere: the open page follows by itself
    page.locator(".headline .s-cancelled").wait_for()

    other = served.engine.start_workflow(approval, "from-the-button")
    _until(lambda: served.engine.get_run(other.run_id).status == "waiting")
    page.goto(f"{served.url}/runs/{other.run_id}")
    page.get_by_role("button", name="Cancel").click()
    page.locator(".headline .s-cancelled").wait_for()
    _until(lambda: served.engine.get_run(other.run_id).status == "cancelled")


def test_a_signal_sent_from_the_editor_finishes_the_run(page: Any, served: Served) -> None:
    waiting = served.engine.start_workflow(approval, "by-signal")
    _until(lambda: served.engine.get_run(waiting.run_id).status == "waiting")
    page.goto(f"{served.url}/runs/{waiting.run_id}")
    page.fill("#signal-name", "approved")
    page.fill("#signal-payload", '{"by": "ada"')  # not JSON yet: nothing can be sent
    assert page.locator("#signal-send").is_disabled()
    assert "Not valid JSON" in page.locator("#signal-error").inner_text()
    page.fill("#signal-payload", '{"by": "ada"}')
    assert page.locator("#signal-send").is_enabled()
    page.locator("#signal-send").click()
    page.locator(".headline .s-completed").wait_for()
    assert waiting.result(timeout=10) == {"by": "ada"}
    assert '"by": "ada"' in page.locator("#output").inner_text()


def test_fork_from_a_step(page: Any, served: Served) -> None:
    bad = served.engine.start_workflow(order, "bad-fork")
    with pytest.raises(durably.WorkflowFailed):
        bad.result(timeout=10)
    page.goto(f"{served.url}/runs/{bad.run_id}")
    page.locator("#journal tbody tr").nth(1).get_by_role("button", name="Fork from here").click()
    page.wait_for_url(lambda url: bad.run_id not in url and "/runs/" in url)
    fork_id = page.url.rstrip("/").rsplit("/", 1)[1]
    steps = served.engine.steps(fork_id)
    assert steps[0].name == "dash.shout" and steps[0].output == "ordering bad-fork"


def test_page_through_a_ten_thousand_step_run(page: Any, served: Served) -> None:
    handle = served.engine.start_workflow(long, 10_000)
    assert handle.result(timeout=120) == sum(range(10_000))
    began = time.monotonic()
    page.goto(f"{served.url}/runs/{handle.run_id}/timeline")
    assert page.locator("#gantt tr.row").count() == 200
    assert "page 1 of 50" in page.inner_text("main")
    page.locator("#next").click()
    page.wait_for_url(re.compile(r"page=2"))
    assert page.locator("#gantt tr.row").first.get_attribute("data-seq") == "200"
    page.goto(f"{served.url}/runs/{handle.run_id}/timeline?page=50")
    assert page.locator("#gantt tr.row").last.get_attribute("data-seq") == "9999"
    page.goto(f"{served.url}/runs/{handle.run_id}")  # the detail page shows the last 20
    assert page.locator("#journal tbody tr").count() == 20
    print(f"10,000-step run: 3 timeline pages and the detail in {time.monotonic() - began:.2f}s")


@durably.step(
    name="dash.flaky", retries=2, backoff=durably.Backoff(initial="1h", max="1h", jitter=0)
)
def flaky(key: str) -> str:
    FLAKY[key] = FLAKY.get(key, 0) + 1
    if FLAKY[key] < 3:
        raise ConnectionError("the gateway timed out")
    return "paid"


FLAKY: dict[str, int] = {}


@durably.workflow(name="dash.subscription")
def subscription(key: str) -> str:
    shout("signed up")
    flaky(key)
    durably.sleep("30d")  # the trial
    renewed = durably.wait_for_signal("renew", timeout="2d")
    shout(f"renewed: {renewed}")
    durably.sleep("30d")
    return shout("closed")


def test_a_run_of_two_months_collapses_its_idle_gaps(browser: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "months.db")
    kit = TestEngine(path)  # two months of a virtual clock, recorded in milliseconds
    try:
        run_id = kit.start_workflow(subscription, "m").run_id
        assert kit.handle(run_id).result(timeout=30) == "closed"
    finally:
        kit.close()
    engine = durably.Engine(path, execute=False)
    try:
        with serving(engine) as served:
            context = browser.new_context(viewport={"width": 1360, "height": 700})
            tab = context.new_page()
            tab.goto(f"{served.url}/?token={TOKEN}")
            tab.goto(f"{served.url}/runs/{run_id}/timeline")
            labels = tab.locator(".gap-label").all_inner_texts()
            assert labels == ["break: 30.0d idle", "break: 30.0d idle"]  # the two sleeps
            assert tab.locator("rect.k-signal").count() == 1  # the 2-day wait, drawn
            retried = tab.locator('tr.row[data-seq="1"] rect')
            assert retried.count() >= 3 + len(labels)  # 3 attempts, and the breaks
            _shot(tab, "timeline")
            context.close()
    finally:
        engine.close()


def test_markup_in_a_payload_is_shown_as_text(page: Any, served: Served) -> None:
    handle = served.engine.start_workflow(script)
    handle.result(timeout=10)
    dialogs: list[str] = []

    def seen(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", seen)
    page.goto(f"{served.url}/runs/{handle.run_id}")
    assert "<script>window.pwned = 1</script>" in page.locator("#output").inner_text()
    assert page.locator("#output b").count() == 0
    assert page.evaluate("window.pwned") is None and dialogs == []


# -- over plain HTTP ---------------------------------------------------------------------
def _request(url: str, **kwargs: Any) -> tuple[int, Any, str]:
    """Status, headers (case-insensitive) and body, redirects not followed."""
    request = urllib.request.Request(url, **kwargs)
    opener = urllib.request.build_opener(_NoRedirect())
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read().decode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


def _session(served: Served) -> tuple[str, str]:
    """A session cookie and the CSRF token of one page."""
    code, headers, _ = _request(f"{served.url}/?token={TOKEN}")
    assert code == 307
    session = headers["set-cookie"].split(";")[0]
    code, headers, html = _request(f"{served.url}/runs", headers={"Cookie": session})
    csrf = re.search(r'name="csrf" content="([^"]+)"', html)
    assert code == 200 and csrf is not None
    return f"{session}; durably_csrf={csrf.group(1)}", csrf.group(1)


def test_no_token_is_401_and_the_token_buys_a_strict_cookie(served: Served) -> None:
    assert _request(f"{served.url}/runs")[0] == 401
    assert _request(f"{served.url}/?token=wrong")[0] == 401
    code, headers, _ = _request(f"{served.url}/?token={TOKEN}")
    assert code == 307 and headers["location"] == "/"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    forged = "durably_session=9999999999.x.0000"
    assert _request(f"{served.url}/runs", headers={"Cookie": forged})[0] == 401
    code, headers, _ = _request(f"{served.url}/runs", headers={"Cookie": cookie.split(";")[0]})
    assert code == 200
    assert headers["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in headers["Content-Security-Policy"]


def test_an_action_needs_its_csrf_token_and_this_origin(served: Served) -> None:
    waiting = served.engine.start_workflow(approval, "csrf")
    _until(lambda: served.engine.get_run(waiting.run_id).status == "waiting")
    cookies, csrf = _session(served)
    target = f"{served.url}/runs/{waiting.run_id}/cancel"

    def post(data: str, origin: str | None) -> int:
        headers = {"Cookie": cookies, "Content-Type": "application/x-www-form-urlencoded"}
        if origin:
            headers["Origin"] = origin
        return _request(target, data=data.encode(), headers=headers, method="POST")[0]

    assert post("", served.url) == 403  # no CSRF token
    assert post("csrf=not-it", served.url) == 403
    assert post(f"csrf={csrf}", "http://evil.example") == 403
    assert post(f"csrf={csrf}", None) == 403  # no Origin, no Referer
    assert served.engine.get_run(waiting.run_id).status == "waiting"
    assert post(f"csrf={csrf}", served.url) == 303
    _until(lambda: served.engine.get_run(waiting.run_id).status == "cancelled")


def test_a_bulk_cancel_shows_the_count_first(served: Served) -> None:
    key = f"bulk-{time.monotonic_ns()}"
    handles = [served.engine.start_workflow(approval, f"{key}-{i}") for i in range(3)]
    _until(lambda: all(served.engine.get_run(h.run_id).status == "waiting" for h in handles))
    cookies, csrf = _session(served)
    headers = {"Cookie": cookies, "Origin": served.url}
    target = f"{served.url}/runs/bulk?workflow=dash.approval&status=waiting"
    code, _, html = _request(target, data=f"csrf={csrf}&action=cancel".encode(), headers=headers)
    shown = re.search(r"Cancel (\d+) run\(s\)\?", html)
    assert code == 200 and shown is not None and int(shown.group(1)) >= 3
    assert all(served.engine.get_run(h.run_id).status == "waiting" for h in handles)
    confirmed = f"csrf={csrf}&action=cancel&confirm={shown.group(1)}".encode()
    code, headers_back, _ = _request(target, data=confirmed, headers=headers)
    assert code == 303 and f"done=cancel:{shown.group(1)}" in headers_back["location"]
    _until(lambda: all(served.engine.get_run(h.run_id).status == "cancelled" for h in handles))


def test_a_bulk_action_changes_only_what_the_filter_and_the_action_select(
    served: Served,
) -> None:
    waiting = served.engine.start_workflow(approval, f"bulk-none-{time.monotonic_ns()}")
    _until(lambda: served.engine.get_run(waiting.run_id).status == "waiting")
    cookies, csrf = _session(served)
    headers = {"Cookie": cookies, "Origin": served.url}
    for action, status in (("cancel", "completed"), ("retry", "cancelled")):
        # A filter of runs the action cannot change selects none (not every live one).
        target = f"{served.url}/runs/bulk?status={status}"
        code, _, html = _request(target, data=f"csrf={csrf}&action={action}".encode(),
                                 headers=headers)  # fmt: skip
        assert code == 200 and f"{action.capitalize()} 0 run(s)?" in html, html
        assert 'id="confirm"' not in html
        sent = f"csrf={csrf}&action={action}&confirm=0".encode()
        assert _request(target, data=sent, headers=headers)[0] == 200  # still nothing to do
    assert served.engine.get_run(waiting.run_id).status == "waiting"


def test_odd_ids_payloads_and_addresses_get_answers_not_errors(served: Served) -> None:
    cookies, csrf = _session(served)
    headers = {"Cookie": cookies}
    code, back, _ = _request(f"{served.url}//evil.example/x?token={TOKEN}")
    assert code == 307 and back["location"] == "/evil.example/x"  # never another site
    lone = served.engine.with_options(run_id="заказ-1").start_workflow(order, "\ud800")
    code, _, html = _request(f"{served.url}/runs/{quote(lone.run_id)}", headers=headers)
    assert code == 200 and "\\ud800" in html  # a lone surrogate, shown escaped
    code, got, _ = _request(f"{served.url}/runs/{quote(lone.run_id)}/input.json", headers=headers)
    assert (
        code == 200
        and f"filename*=UTF-8''{quote(lone.run_id)}-input.json" in got["content-disposition"]
    )
    assert _request(f"{served.url}/runs/{quote(lone.run_id)}/other.json", headers=headers)[0] == 404
    assert _request(f"{served.url}/runs/a%00b", headers=headers)[0] == 404
    posted = {**headers, "Origin": served.url}
    gone = _request(f"{served.url}/runs/no-such-run/cancel", data=f"csrf={csrf}".encode(),
                    headers=posted)  # fmt: skip
    assert gone[0] == 404
    deep = quote("[" * 5000 + "]" * 5000)
    form = f"csrf={csrf}&name=go&payload={deep}".encode()
    sent = _request(f"{served.url}/runs/{quote(lone.run_id)}/signal", data=form, headers=posted)
    assert sent[0] == 400 and "nested too deeply" in sent[2]


def test_mounted_in_an_application_every_link_and_redirect_stays_under_its_path(
    tmp_path: Path,
) -> None:
    engine = durably.Engine(str(tmp_path / "mounted.db"), execute=False)
    try:
        with serving(engine, mount="/ops/durably") as served:
            cookies, csrf = _session(served)  # the login redirects under the path too
            odd = engine.with_options(run_id="odd?id#1 &x").start_workflow(approval, "m")
            code, _, html = _request(f"{served.url}/runs", headers={"Cookie": cookies})
            assert code == 200 and 'src="/ops/durably/static/app.js"' in html
            assert '<meta name="base" content="/ops/durably">' in html  # for /live
            assert 'href="/ops/durably/runs/odd%3Fid%231%20%26x"' in html  # the id encoded
            assert 'href="/' not in html.replace('href="/ops/durably/', "")  # none outside
            asset = _request(f"{served.url}/static/app.js", headers={"Cookie": cookies})
            assert asset[0] == 200
            target = f"{served.url}/runs/{quote(odd.run_id, safe='')}/cancel"
            headers = {"Cookie": cookies, "Origin": served.url.rsplit("/ops", 1)[0]}
            code, back, _ = _request(target, data=f"csrf={csrf}".encode(), headers=headers)
            assert code == 303 and back["location"] == "/ops/durably/runs/odd%3Fid%231%20%26x"
    finally:
        engine.close()


def test_a_signal_sent_to_a_run_changes_what_its_live_page_follows(served: Served) -> None:
    waiting = served.engine.start_workflow(approval, "live-signal")
    _until(lambda: served.engine.get_run(waiting.run_id).status == "waiting")
    watch = f"run:{waiting.run_id}"
    before = _digest(served.engine, watch, {}, Totals())
    served.engine.send_signal(waiting.run_id, "not-yet", 1)  # shown as sent, not received
    assert _digest(served.engine, watch, {}, Totals()) != before


def test_an_ipv6_address_is_this_site() -> None:
    def request(host: str, origin: str) -> Request:
        headers = [(b"host", host.encode()), (b"origin", origin.encode())]
        return Request({"type": "http", "scheme": "http", "headers": headers, "path": "/"})

    assert _same_site(request("[::1]:8765", "http://[::1]:8765"))
    assert not _same_site(request("[::1]:8765", "http://[::2]:8765"))
    assert not _same_site(request("[::1]:bad", "http://[::1]:bad"))  # malformed: never


def test_read_only_has_no_action(tmp_path: Path) -> None:
    engine = durably.Engine(str(tmp_path / "ro.db"), execute=False)
    try:
        with serving(engine, read_only=True) as served:
            cookies, csrf = _session(served)
            headers = {"Cookie": cookies, "Origin": served.url}
            run_id = engine.start_workflow(approval, "ro").run_id
            code, _, _ = _request(
                f"{served.url}/runs/{run_id}/cancel", data=f"csrf={csrf}".encode(), headers=headers
            )
            assert code == 405
            code, _, html = _request(f"{served.url}/runs/{run_id}", headers={"Cookie": cookies})
            assert code == 200 and "Cancel" not in html and "Send a signal" not in html
    finally:
        engine.close()


def test_a_public_address_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DURABLY_DASHBOARD_TOKEN"}
    durably_cli = shutil.which("durably") or ""
    command = [durably_cli] if durably_cli else [sys.executable, "-m", "durably"]
    done = subprocess.run(
        [*command, "dashboard", "--host", "0.0.0.0", "--store", str(tmp_path / "x.db")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 3, done.stderr
    assert "refusing to serve the dashboard on 0.0.0.0 without a token" in done.stderr
    assert "DURABLY_DASHBOARD_TOKEN" in done.stderr


def _until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
