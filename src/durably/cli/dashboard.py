"""``durably dashboard``: the web dashboard on the configured store (docs/dashboard.md)."""

from __future__ import annotations

import ipaddress
import os
import secrets

import click

from durably.cli.output import USAGE, Failure
from durably.cli.session import Session, common, with_session

TOKEN_ENV = "DURABLY_DASHBOARD_TOKEN"


def loopback(host: str) -> bool:
    """Whether only this machine can reach ``host`` (127.0.0.1, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@common
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option("--read-only", is_flag=True, help="Show everything, change nothing (405).")
@with_session
def dashboard(s: Session, host: str, port: int, read_only: bool) -> None:
    """Serve the web dashboard: runs, timelines, signals, schedules.

    On 127.0.0.1 (the default) it prints a URL with a one-time token; another address
    needs DURABLY_DASHBOARD_TOKEN (a secret of at least 16 characters, asked for once
    per browser) or it refuses to start.
    """
    configured = os.environ.get(TOKEN_ENV)
    if configured is not None and len(configured) < 16:
        raise Failure(f"{TOKEN_ENV} must be at least 16 characters", USAGE)
    if configured is None and not loopback(host):
        raise Failure(
            f"refusing to serve the dashboard on {host} without a token: set {TOKEN_ENV} "
            "(or bind 127.0.0.1, or mount durably.dashboard.app(engine, auth=...) in an "
            "application that has its own login)",
            USAGE,
        )
    try:
        import uvicorn

        from durably.dashboard import app
    except ImportError as exc:
        raise Failure(f"{exc} (pip install 'durably[dashboard]')", USAGE) from exc
    token = configured or secrets.token_urlsafe(24)
    web = app(s.engine(), read_only=read_only, token=token, reusable_token=bool(configured))
    shown = "localhost" if loopback(host) else host
    url = f"http://{shown}:{port}/"
    if configured:
        click.echo(f"durably dashboard on {url} (open {url}?token=<{TOKEN_ENV}>)", err=True)
    else:
        click.echo(f"durably dashboard: open {url}?token={token}", err=True)
    uvicorn.run(web, host=host, port=port, log_level="warning")
