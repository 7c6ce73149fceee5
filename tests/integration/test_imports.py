"""Optional parts load only when asked for: pydantic and psycopg stay out of ``import durably``,
and the unit tier collects without psycopg."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import durably

ROOT = Path(__file__).resolve().parents[2]
BLOCK_PSYCOPG = "import sys; sys.modules['psycopg'] = sys.modules['psycopg_pool'] = None; "


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True
    )


def test_pydantic_not_imported_by_serialization() -> None:
    code = (
        "import sys, durably.serialization as s; "
        "s.dumps({'a': 1}, what='v'); s.loads('[1]', list[int], what='v'); "
        "print('pydantic' in sys.modules)"
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_durably_works_without_psycopg_and_names_the_extra() -> None:
    code = BLOCK_PSYCOPG + (
        "import durably\n"
        "with durably.Engine(':memory:') as e: pass\n"
        "try:\n    durably.PostgresStore\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert "pip install 'durably[postgres]'" in done.stdout


def test_the_unit_tier_collects_without_psycopg() -> None:
    code = BLOCK_PSYCOPG + (
        "import pytest; sys.exit(pytest.main(['-q', '--collect-only', '-p', 'no:cacheprovider', "
        "'tests/unit']))"
    )
    done = _python(code)
    assert done.returncode == 0, done.stdout + done.stderr


def test_postgres_store_is_reachable_from_the_top() -> None:
    from durably.stores.postgres import PostgresStore

    assert durably.PostgresStore is PostgresStore
