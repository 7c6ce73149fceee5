"""Every script in examples/ runs on its own and shows what it claims to."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

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
    "celery_orders.py": [
        "order: {'receipt': 'receipt-o-1-1000', 'tracking': 'tracking-o-1'}",
        "order: {'receipt': 'receipt-o-3-3000', 'tracking': 'tracking-o-3'}",
        "approval: o-9 approved",
        "none in this one",
        "worker stopped: exit code 0",
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
    path = os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))
    done = _python([str(EXAMPLES / name)], tmp_path, path, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    for line in EXPECTED[name]:
        assert line in done.stdout, done.stdout
    assert done.stderr == ""
    assert list(tmp_path.iterdir()) == []  # examples clean up after themselves


def test_the_testing_example_passes_its_own_tests() -> None:
    """examples/testing is a user's project: its tests use the pytest plugin's fixtures,
    TestEngine, crash_sweep and replay_check."""
    here = EXAMPLES / "testing"
    pytest_args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", str(here)]
    done = _python(pytest_args, here, os.pathsep.join([SRC, str(here)]), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 passed" in done.stdout, done.stdout


def test_the_testing_docs_show_the_tested_code() -> None:
    code = "\n".join(p.read_text() for p in (EXAMPLES / "testing").glob("*.py"))
    doc = (EXAMPLES.parent / "docs" / "testing.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    assert len(blocks) >= 5
    for block in blocks:
        assert block in code, block


def _python(args: list[str], cwd: Path, path: str, timeout: float) -> Any:
    """This Python on ``args`` in ``cwd`` with ``PYTHONPATH=path``; its completed process."""
    env = dict(os.environ, PYTHONPATH=path)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
