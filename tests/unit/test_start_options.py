"""Start options are checked when made and never taken from a workflow's arguments."""

from __future__ import annotations

import pytest

import durably
from durably.starting import StartOptions


@durably.workflow(name="t.options.ship")
def ship(order: str, queue: str = "none", *, priority: int = 0) -> str:
    return f"{order}:{queue}:{priority}"


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"run_id": ""}, "run_id"),
        ({"idempotency_key": "k" * 201}, "idempotency_key"),
        ({"queue": 3}, "queue"),
        ({"priority": True}, "priority"),
        ({"priority": "high"}, "priority"),
        ({"delay": "soon"}, "soon"),
        ({"partition_key": ""}, "partition_key"),
    ],
)
def test_bad_options_fail_when_made(options: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        StartOptions(**options)  # type: ignore[arg-type]


def test_parameters_named_like_options_are_the_workflows() -> None:
    # A workflow may call its parameters queue or priority: they are its arguments.
    ship.check_arguments(("o-1",), {"queue": "billing", "priority": 3})
    assert ship("o-1", "billing", priority=3) == "o-1:billing:3"


def test_arguments_that_do_not_fit_name_the_workflow() -> None:
    with pytest.raises(TypeError, match=r"cannot start workflow 't\.options\.ship'.*'order'"):
        ship.check_arguments((), {})
    with pytest.raises(TypeError, match=r"'delay' is a start option.*with_options\(delay="):
        ship.check_arguments(("o-1",), {"delay": "5m"})
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'colour'$"):
        ship.check_arguments(("o-1",), {"colour": "red"})


def test_options_default_to_an_immediate_run_in_the_default_queue() -> None:
    options = StartOptions()
    assert (options.queue, options.priority, options.wait) == ("default", 0, 0.0)
    assert StartOptions(delay="1m").wait == 60.0
