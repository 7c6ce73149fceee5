"""A small application whose tests (test_orders.py) use durably.testing."""

from __future__ import annotations

import durably

outbox: list[str] = []  # stands in for a mail service


@durably.step(retries=3, backoff=durably.Backoff(initial="1h", max="1h", jitter=0))
def charge(order_id: str, cents: int) -> str:
    return f"receipt-{order_id}-{cents}"


@durably.step
def send_reminder(order_id: str) -> None:
    message = f"reminder {order_id}"
    if message not in outbox:  # idempotent: sent again after a crash, it is sent once
        outbox.append(message)


@durably.workflow(name="shop.checkout")
def checkout(order_id: str, cents: int) -> str:
    paid = durably.wait_for_signal("paid", timeout="3d")
    if paid is None:
        send_reminder(order_id)
        paid = durably.wait_for_signal("paid", timeout="4d")
        if paid is None:
            return "expired"
    receipt = charge(order_id, cents)
    durably.sleep("30d")  # the return window
    return receipt
