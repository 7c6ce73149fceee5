"""Quick start: a workflow of three steps, one of which fails once and is retried.

Run it with ``python examples/quickstart.py``. It is the README's quick start,
with a payment gateway that times out on the first try.
"""

from __future__ import annotations

import os
import tempfile

import durably

charge_attempts = 0


@durably.step
def reserve(order_id: str) -> int:
    print(f"  reserve({order_id!r})")
    return 1


@durably.step(retries=3, backoff="exponential", timeout="30s")
def charge(order_id: str, cents: int) -> str:
    global charge_attempts
    charge_attempts += 1
    print(f"  charge({order_id!r}, {cents}) attempt {charge_attempts}")
    if charge_attempts == 1:
        raise ConnectionError("payment gateway timed out")  # transient: retried with backoff
    return f"receipt-{order_id}-{cents}"


@durably.step
def ship(order_id: str) -> str:
    print(f"  ship({order_id!r})")
    return f"tracking-{order_id}"


@durably.workflow(name="orders.checkout.v1")
def checkout(order_id: str, cents: int) -> dict[str, str]:
    reserve(order_id)
    receipt = charge(order_id, cents)  # runs once, then answered from the journal
    tracking = ship(order_id)
    return {"receipt": receipt, "tracking": tracking}


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        durably.Engine(os.path.join(tmp, "orders.db")) as engine,
    ):
        run = engine.with_options(idempotency_key="o-1").start_workflow(checkout, "o-1", 1999)
        print(f"result: {run.result(timeout=60)}")
        print("journal:")
        for entry in engine.steps(run.run_id):
            print(f"  {entry.seq} {entry.name}: {entry.status}, {entry.attempts} attempt(s)")


if __name__ == "__main__":
    main()
