"""An async workflow: three async steps run concurrently with ``asyncio.gather``.

Run it with ``python examples/async_workflow.py``. Each quote takes 0.3 s, and the
three together take about 0.3 s, not 0.9 s. Each step takes its journal position
when it is called, so a replay of the gather is deterministic whichever finishes
first.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from dataclasses import dataclass

import durably

PRICES = {"acme": 1250, "globex": 1175, "initech": 1320}  # cents per widget


@dataclass(frozen=True)
class Quote:
    supplier: str
    cents: int


@durably.step(retries=2)
async def get_quote(supplier: str, item: str) -> Quote:
    await asyncio.sleep(0.3)  # an HTTP call, say
    print(f"  quote from {supplier}: {PRICES[supplier]} cents per {item}")
    return Quote(supplier, PRICES[supplier])


@durably.step
async def place_order(quote: Quote, quantity: int) -> str:
    await asyncio.sleep(0.1)
    return f"PO-{quote.supplier}-{quantity}x{quote.cents}"


@durably.workflow(name="purchasing.best_quote.v1")
async def buy_cheapest(item: str, quantity: int) -> str:
    quotes = await asyncio.gather(*(get_quote(s, item) for s in sorted(PRICES)))
    best = min(quotes, key=lambda q: q.cents)
    return await place_order(best, quantity)


async def main() -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        durably.Engine(os.path.join(tmp, "durably.db")) as engine,
    ):
        started = time.monotonic()
        run = await engine.start_workflow_async(buy_cheapest, "widget", 40)
        order = await run.result_async(timeout=30)
        print(f"result: {order} (in {time.monotonic() - started:.2f} s)")
        names = [entry.name for entry in await engine.steps_async(run.run_id)]
        print(f"journal: {', '.join(names)}")


if __name__ == "__main__":
    asyncio.run(main())
