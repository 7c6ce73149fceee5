"""Decorated functions keep their signatures for type checkers; results are typed."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mypy import api

SNIPPET = """
import durably

@durably.step
async def fetch(x: int) -> int:
    return x

@durably.workflow
async def async_flow(x: int) -> int:
    child = await durably.start_child_async(sync_flow, x)
    return await fetch(x) + len(await child.result_async())

@durably.workflow(name="t.sync")
def sync_flow(x: int) -> str:
    return str(x)

engine = durably.Engine(":memory:")
reveal_type(engine.start_workflow(async_flow, 1).result())
reveal_type(engine.start_workflow(sync_flow, 1).result())
reveal_type(engine.start_workflow("by.name").result())
reveal_type(sync_flow(2))
sync_flow("not an int")
"""


def test_signatures_and_results_are_typed(tmp_path: Path) -> None:
    source = tmp_path / "snippet.py"
    source.write_text(textwrap.dedent(SNIPPET))
    out, _, _ = api.run(["--strict", "--no-incremental", str(source)])
    assert 'Revealed type is "int"' in out
    assert out.count('Revealed type is "str"') == 2
    assert 'Revealed type is "Any"' in out
    assert 'Argument 1 to "__call__" of "Workflow" has incompatible type "str"' in out
