"""PostgreSQL URLs: a wrong one fails at once with the server's reason, a typo is not a file."""

from __future__ import annotations

import pytest

import durably
from tests import postgres


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (("127.0.0.1/", "127.0.0.1:5999/"), "port 5999 failed"),
        (("postgres@", "nobody@"), 'role "nobody" does not exist'),
        (("/test", "/no_such_db"), 'database "no_such_db" does not exist'),
        (("/test", "/test?bogus=1"), 'invalid URI query parameter: "bogus"'),
    ],
)
def test_a_wrong_url_says_what_the_server_said(change: tuple[str, str], said: str) -> None:
    postgres.require()
    url = postgres.URL.replace(*change)
    assert url != postgres.URL
    with pytest.raises(durably.StoreError, match="cannot connect to PostgreSQL") as caught:
        durably.Engine(url, execute=False)
    assert said in str(caught.value)


def test_a_password_is_not_shown() -> None:
    postgres.require()
    url = postgres.URL.replace("postgres@", "nobody:s3cret@")
    with pytest.raises(durably.StoreError) as caught:
        durably.Engine(url, execute=False)
    assert "s3cret" not in str(caught.value) and "***" in str(caught.value)


@pytest.mark.parametrize("typo", ["postgresql//db/x", "postgres:/db", "sqlite:x.db"])
def test_a_url_missing_its_slashes_is_refused(typo: str) -> None:
    with pytest.raises(ValueError, match="missing '://'"):
        durably.Engine(typo)


def test_a_url_without_a_host_keeps_its_form() -> None:
    # libpq's own form: the host (or a socket folder) in the query, none after '//'.
    postgres.require()
    name = postgres.new_schema("nohost")
    try:
        url = f"postgresql:///test?host=127.0.0.1&user=postgres&schema={name}"
        with durably.Engine(url, execute=False) as engine:
            assert engine.list_runs() == []
            assert "postgresql:///test?host=127.0.0.1" in repr(engine.store)
    finally:
        postgres.drop_schema(name)


def test_search_path_names_the_schema() -> None:
    postgres.require()
    name = postgres.new_schema("sp")
    try:
        with durably.Engine(f"{postgres.URL}?search_path={name}", execute=False) as engine:
            assert engine.store.schema == name  # type: ignore[attr-defined]
        with pytest.raises(ValueError, match="two schemas"):
            durably.Engine(f"{postgres.URL}?search_path={name}&schema=other", execute=False)
    finally:
        postgres.drop_schema(name)
