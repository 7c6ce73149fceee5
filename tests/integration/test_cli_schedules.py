"""``durably schedules ...`` in every format, on each backend; bad input and unknown ids."""

from __future__ import annotations

import pytest

import durably
from durably.cli.output import NOT_FOUND, OK, USAGE
from tests.integration.cli import ANSI, cli


@durably.workflow(name="clis.report")
def report(region: str = "eu") -> str:
    return region


def test_a_schedules_life_from_the_shell(store_url: str) -> None:
    store = ("--store", store_url)
    durably.Engine(store_url, execute=False).close()  # the database exists
    made = cli("schedules", "create", "nightly", "clis.report", '["us"]', "--cron", "0 2 * * *",
               "--tz", "Europe/Paris", "--end-at", "2099-01-01T00:00Z", "-o", "json",
               *store)  # fmt: skip
    assert made.code == OK, made
    assert cli("schedules", "list", "-o", "ids", *store).out == ""  # no run yet: no blank line
    assert made.json()["spec"]["cron"] == "0 2 * * *" and made.json()["next_tick"]

    listed = cli("schedules", "list", "-o", "jsonl", *store)
    assert [line["id"] for line in listed.lines()] == ["nightly"]
    table = cli("schedules", "show", "nightly", *store)
    assert table.code == OK and "cron '0 2 * * *' in Europe/Paris" in table.out
    assert "2099-01-01 00:00:00" in next(x for x in table.out.splitlines() if "until" in x)
    assert "+01:00" in table.out or "+02:00" in table.out  # fire times in the zone
    assert not ANSI.search(table.out)

    updated = cli("schedules", "update", "nightly", "--overlap", "buffer_one", "-o", "json", *store)
    assert updated.json()["spec"]["overlap"] == "buffer_one"
    assert updated.json()["next_tick"] == made.json()["next_tick"]
    assert cli("schedules", "pause", "nightly", "--note", "freeze", "-o", "json", *store).json()[
        "paused"
    ]
    assert not cli("schedules", "resume", "nightly", "-o", "json", *store).json()["paused"]

    triggered = cli("schedules", "trigger", "nightly", *store)
    assert triggered.out.startswith("nightly@trigger-")
    filled = cli("schedules", "backfill", "nightly", "--start", "2026-03-01T00:00Z",
                 "--end", "2026-03-03T23:00Z", *store)  # fmt: skip
    assert filled.out.strip() == "created 3 run(s); 0 tick(s) had run", filled
    shown = cli("schedules", "show", "nightly", "-o", "json", *store).json()
    assert sorted(t["kind"] for t, _ in shown["recent"]) == ["backfill"] * 3 + ["trigger"]

    assert cli("schedules", "delete", "nightly", *store).code == OK
    assert cli("schedules", "show", "nightly", *store).code == NOT_FOUND


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "x", "clis.report", "--cron", "99 * * * *"], "bad minute '99'"),
        (["create", "x", "clis.report", "--every", "1h", "--tz", "Atlantis"], "unknown time zone"),
        (["create", "x", "no.such", "--every", "1h"], "unknown workflow name 'no.such'"),
        (["create", "x", "clis.report", "--every", "1h", "--start-at", "soon"], "ISO 8601"),
        (["create", "x", "clis.report", "[1, 2, 3]", "--every", "1h"], "cannot start workflow"),
        (["backfill", "x", "--start", "2026-01-01", "--end", "2026-01-02"], "needs a zone"),
    ],
)
def test_bad_input_is_one_line_and_exit_3(store_url: str, args: list[str], message: str) -> None:
    durably.Engine(store_url, execute=False).close()
    done = cli("schedules", *args, "--store", store_url)
    assert done.code == USAGE, done
    assert message in done.err and done.err.count("\n") == 1
    assert cli("schedules", "list", "-o", "json", "--store", store_url).json() == []
