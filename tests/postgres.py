"""The test PostgreSQL: its URL, one check that it answers, fresh schemas.

psycopg is imported only when a test asks for PostgreSQL, so the unit tier
collects without the postgres extra. When the server does not answer, every
PostgreSQL test fails at once with one message (no pool timeout per test).
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import pytest

#: The PostgreSQL of the test machine (README: Tests); each test gets its own schema.
URL = os.environ.get("DURABLY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1/test")
START_IT = (
    "start it (`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`) "
    "or point DURABLY_TEST_POSTGRES at another server"
)
_verdict: list[str] = []  # "" once it answered, the failure message otherwise


def require() -> None:
    """Fail the calling test at once when the test PostgreSQL is unreachable."""
    if not _verdict:
        _verdict.append(_check())
    if _verdict[0]:
        pytest.fail(_verdict[0], pytrace=False)


def _check() -> str:
    import psycopg

    deadline = time.monotonic() + 10
    while True:
        try:
            psycopg.connect(URL, connect_timeout=3).close()
            return ""
        except psycopg.OperationalError as exc:
            # A shared server may be out of connections for a moment: that passes.
            if "too many clients" not in str(exc) or time.monotonic() > deadline:
                return f"PostgreSQL is unreachable at {URL}: {exc}; {START_IT}"
            time.sleep(0.5)


def connect() -> Any:
    """A connection of the test's own (autocommit), once the server is known to answer."""
    import psycopg

    require()
    return psycopg.connect(URL, autocommit=True, connect_timeout=10)


def new_schema(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def drop_schema(name: str) -> None:
    with connect() as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def schema_url(name: str) -> str:
    return f"{URL}?schema={name}"
