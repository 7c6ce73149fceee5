"""Decorated functions keep their signatures for type checkers; starts are checked against
the workflow's signature (ParamSpec), with start options apart; results are typed."""

from __future__ import annotations

import re
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
def sync_flow(x: int, *, label: str = "") -> str:
    return str(x) + label

async def main(engine: durably.Engine) -> None:
    reveal_type((await engine.start_workflow_async(async_flow, 1)).result())  # R1

engine = durably.Engine(":memory:")
reveal_type(engine.start_workflow(async_flow, 1).result())  # R2
reveal_type(engine.start_workflow(sync_flow, 1, label="a").result())  # R3
reveal_type(engine.with_options(queue="q").start_workflow(sync_flow, 1).result())  # R4
reveal_type(engine.start_workflow("by.name", 1, anything=2).result())  # R5
reveal_type(sync_flow(2))  # R6
sync_flow("not an int")  # E1
engine.start_workflow(sync_flow, "not an int")  # E2
engine.start_workflow(sync_flow, 1, queue="q")  # E3
engine.start_workflow(sync_flow)  # E4
engine.with_options(queue="q").start_workflow_async(async_flow, "x")  # E5
durably.start_child(sync_flow, 1, colour="red")  # E6
"""


def _lines_with(out: str, source: str, marker: str) -> list[str]:
    line = next(i for i, text in enumerate(source.splitlines(), 1) if f"# {marker}" in text)
    return [m for m in out.splitlines() if re.search(rf":{line}: ", m)]


def test_signatures_starts_and_results_are_typed(tmp_path: Path) -> None:
    source = textwrap.dedent(SNIPPET)
    path = tmp_path / "snippet.py"
    path.write_text(source)
    out, _, _ = api.run(["--strict", "--no-incremental", str(path)])
    revealed = {
        marker: " ".join(_lines_with(out, source, marker))
        for marker in ("R1", "R2", "R3", "R4", "R5", "R6")
    }
    assert 'Revealed type is "int"' in revealed["R1"]
    assert 'Revealed type is "int"' in revealed["R2"]
    assert 'Revealed type is "str"' in revealed["R3"]
    assert 'Revealed type is "str"' in revealed["R4"]
    assert 'Revealed type is "Any"' in revealed["R5"]
    assert 'Revealed type is "str"' in revealed["R6"]
    for marker in ("E1", "E2", "E3", "E4", "E5", "E6"):
        errors = [m for m in _lines_with(out, source, marker) if "error:" in m]
        assert errors, f"{marker} should be a type error:\n{out}"
    for marker in ("R1", "R2", "R3", "R4", "R5", "R6"):
        assert "error:" not in revealed[marker], revealed[marker]
