"""The test tiers, by folder (each test gets its tier's marker, so ``-m`` selects too).

- ``tests/unit``: no I/O at all; what ``pytest`` runs with no arguments (seconds).
- ``tests/integration`` and ``tests/stores``: real SQLite files and a real PostgreSQL.
- ``tests/acceptance``: real worker processes, killed with SIGKILL and restarted.

``pytest tests`` runs every tier (what CI runs).
"""

from __future__ import annotations

from pathlib import Path

import pytest

TIERS = {"unit": "unit", "integration": "integration", "stores": "integration"}
HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = Path(item.path).relative_to(HERE).parts[0]
        item.add_marker(getattr(pytest.mark, TIERS.get(folder, "acceptance")))


def pytest_report_header(config: pytest.Config) -> str:
    return "tiers: tests/unit (the default), tests/integration, tests/stores, tests/acceptance"
