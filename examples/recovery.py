"""Recovery: idempotent starts, and retrying a failed run once its cause is fixed.

Run it with ``python examples/recovery.py``. A step fails until its
configuration (an environment variable) is set. The run fails; starting it again with
the same idempotency key finds the same run instead of charging twice; after the
"fix", ``engine.retry`` resumes it from its last checkpoint: the step that had
already succeeded is not run again.
"""

from __future__ import annotations

import os
import tempfile

import durably

KEY = "invoice-2024-06-acme"  # one invoice per customer and month
SETTING = "EXAMPLE_INVOICING_URL"  # missing until the "fix" sets it
calls = {"charge": 0, "send_invoice": 0}


@durably.step
def charge(customer: str, cents: int) -> str:
    calls["charge"] += 1
    print(f"  charge({customer!r}, {cents}): charged")
    return f"ch-{customer}-{cents}"


@durably.step(retries=1, backoff=0.1)
def send_invoice(customer: str, charge_id: str) -> str:
    calls["send_invoice"] += 1
    if not os.environ.get(SETTING):
        print("  send_invoice: failed (invoicing is not configured)")
        raise RuntimeError(f"invoicing is not configured: set {SETTING}")
    print("  send_invoice: sent")
    return f"inv-{charge_id}"


@durably.workflow(name="billing.invoice.v1")
def bill(customer: str, cents: int) -> str:
    charge_id = charge(customer, cents)
    return send_invoice(customer, charge_id)


def main() -> None:
    os.environ.pop(SETTING, None)
    with (
        tempfile.TemporaryDirectory() as tmp,
        durably.Engine(os.path.join(tmp, "billing.db")) as engine,
    ):
        print("1. start the run, keyed by the business operation it performs")
        run = engine.with_options(idempotency_key=KEY).start_workflow(bill, "acme", 4200)
        try:
            run.result(timeout=30)
        except durably.WorkflowFailed as failure:
            print(f"   run {run.run_id} failed: {failure.error_message}")

        print("2. start it again with the same key: the same run, nothing runs twice")
        again = engine.with_options(idempotency_key=KEY).start_workflow(bill, "acme", 4200)
        print(f"   same run: {again.run_id == run.run_id}, status {again.status().value}")

        print("3. fix the cause, then retry the failed run from its last checkpoint")
        os.environ[SETTING] = "https://invoicing.example"
        result = engine.retry(run.run_id).result(timeout=30)
        print(f"   result: {result}")
        print(f"   step bodies executed: {calls} (charge once, despite two failures)")


if __name__ == "__main__":
    main()
