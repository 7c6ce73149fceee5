"""Every script in examples/ runs on its own and shows what it claims to."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import durably

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SRC = str(Path(durably.__file__).resolve().parent.parent)

EXPECTED = {
    "quickstart.py": [
        "charge('o-1', 1999) attempt 2",
        "result: {'receipt': 'receipt-o-1-1999', 'tracking': 'tracking-o-1'}",
        "1 charge: completed, 2 attempt(s)",
    ],
    "async_workflow.py": [
        "result: PO-globex-40x1175",
        "journal: get_quote, get_quote, get_quote, place_order",
    ],
    "schedules.py": [
        "trigger: report eu (trigger)",
        "backfill: created 5, then 0 (5 existed)",
        "backfilled run: report eu (backfill of 2026-03-02 08:00Z)",
    ],
    "observability.py": [
        "INFO shop [shop.order None] ordering lamp",
        "INFO shop.inventory [shop.order reserve] reserving lamp",
        "step reserve attempt 1 failed (ConnectionError: inventory service timed out)",
        "result: reserved-lamp",
        'durably_runs_finished_total{queue="default",status="completed",workflow="shop.order"} 1.0',
        'durably_step_retries_total{step="reserve",workflow="shop.order"} 1.0',
    ],
    "recovery.py": [
        "failed: step 'send_invoice' failed after 2 attempt(s)",
        "same run: True, status failed",
        "result: inv-ch-acme-4200",
        "{'charge': 1, 'send_invoice': 3}",
    ],
}


def test_every_example_is_tested() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str, tmp_path: Path) -> None:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))
    )
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for line in EXPECTED[name]:
        assert line in done.stdout, done.stdout
    assert done.stderr == ""
    assert list(tmp_path.iterdir()) == []  # examples clean up after themselves
