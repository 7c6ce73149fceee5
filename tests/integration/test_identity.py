"""What a run is, by its id, key and payloads: nothing silently merged, dropped or mixed up."""

from __future__ import annotations

import pytest

import durably


@durably.workflow(name="id.echo")
def echo(value: object) -> object:
    return value


@durably.workflow(name="id.other")
def other(value: object) -> object:
    return value


@durably.step
def colliding_step() -> dict[object, str]:
    return {1: "a", "1": "b"}


@durably.workflow(name="id.colliding_step")
def colliding_in_step() -> None:
    colliding_step()


@durably.workflow(name="id.colliding_result")
def colliding_result() -> dict[object, str]:
    return {True: "yes", "true": "also yes"}


def test_keys_that_collide_as_json_are_refused(engine: durably.Engine) -> None:
    with pytest.raises(durably.SerializationError, match="same JSON string"):
        engine.start_workflow(echo, {1: "a", "1": "b"})
    assert engine.list_runs(workflow="id.echo") == []
    for wf in (colliding_in_step, colliding_result):
        handle = engine.start_workflow(wf)
        with pytest.raises(durably.WorkflowFailed, match="same JSON string"):
            handle.result(timeout=10)
    # Keys of one type are fine, numbers included.
    assert engine.start_workflow(echo, {1: "a", 2: "b"}).result(timeout=10) == {"1": "a", "2": "b"}


@durably.workflow(name="id.listener")
def listener() -> list[object]:
    return [durably.wait_for_signal("a", timeout="5s"), durably.wait_for_signal("b", timeout="1s")]


def test_signal_keys_belong_to_their_run_and_name(engine: durably.Engine) -> None:
    first, second = engine.start_workflow(listener), engine.start_workflow(listener)
    for handle in (first, second):
        engine.send_signal(handle.run_id, "a", "to-" + handle.run_id, idempotency_key="k")
    engine.send_signal(first.run_id, "a", "again", idempotency_key="k")  # a retried send
    engine.send_signal(first.run_id, "b", "other name", idempotency_key="k")
    assert first.result(timeout=15) == ["to-" + first.run_id, "other name"]
    assert second.result(timeout=15) == ["to-" + second.run_id, None]


@durably.workflow(name="id.kid")
def kid(x: int) -> int:
    return x * 2


@durably.workflow(name="id.parent")
def parent(x: int) -> list[object]:
    child = durably.start_child(kid, x)
    return [child.run_id, child.result()]


def test_a_child_cannot_be_named_by_a_start(engine: durably.Engine) -> None:
    # Runs named the way child ids once were (parent id and position) change nothing.
    starter = engine.with_options(run_id="the-parent")
    squatter = engine.with_options(run_id="the-parent.0").start_workflow(kid, 100)
    assert squatter.result(timeout=10) == 200
    child_id, doubled = starter.start_workflow(parent, 4).result(timeout=10)
    assert doubled == 8 and child_id != "the-parent.0"
    assert engine.get_run(str(child_id)).parent_id == "the-parent"
    # Nor can a start reuse a child's id and be handed the child.
    with pytest.raises(durably.IdempotencyConflict, match="parent 'the-parent', not None"):
        engine.with_options(run_id=str(child_id)).start_workflow(kid, 4)


def test_reused_ids_and_keys_must_ask_for_the_same_run(engine: durably.Engine) -> None:
    keyed = engine.with_options(idempotency_key="order-1")
    first = keyed.start_workflow(echo, {"a": 1, "b": 2})
    assert keyed.start_workflow(echo, {"b": 2, "a": 1}).run_id == first.run_id  # same input
    with pytest.raises(durably.IdempotencyConflict, match=r"'order-1'.*other input") as caught:
        keyed.start_workflow(echo, {"a": 1, "b": 3})
    assert caught.value.run_id == first.run_id and caught.value.differs == ["other input"]
    with pytest.raises(durably.IdempotencyConflict, match=r"workflow 'id\.echo', not 'id\.other'"):
        keyed.start_workflow(other, {"a": 1, "b": 2})
    by_id = engine.with_options(run_id="fixed-id")
    by_id.start_workflow(echo, 1)
    assert by_id.start_workflow(echo, 1).run_id == "fixed-id"
    with pytest.raises(durably.IdempotencyConflict, match="run id 'fixed-id'"):
        by_id.start_workflow(echo, 2)
    assert len(engine.list_runs(workflow="id.echo")) == 2


def test_an_id_and_a_key_of_two_runs_are_refused(engine: durably.Engine) -> None:
    engine.with_options(run_id="run-a", idempotency_key="key-a").start_workflow(echo, 1)
    engine.with_options(run_id="run-n").start_workflow(echo, 1)
    asked = engine.with_options(run_id="run-b", idempotency_key="key-a")  # the key is a's
    with pytest.raises(durably.IdempotencyConflict, match="another id than 'run-b'"):
        asked.start_workflow(echo, 1)
    with pytest.raises(durably.IdempotencyConflict, match="key 'key-a', not 'key-c'"):
        engine.with_options(run_id="run-a", idempotency_key="key-c").start_workflow(echo, 1)
    with pytest.raises(durably.IdempotencyConflict, match="no idempotency key, not 'key-c'"):
        engine.with_options(run_id="run-n", idempotency_key="key-c").start_workflow(echo, 1)
    # Nothing was started nor recorded: key-c is free, run-b does not exist.
    fresh = engine.with_options(idempotency_key="key-c").start_workflow(echo, 1)
    assert fresh.run_id not in {"run-a", "run-b", "run-n"}
    with pytest.raises(durably.RunNotFound):
        engine.get_run("run-b")
    # The id and key of one run, or either alone, still name it.
    for key in ("key-a", None):
        again = engine.with_options(run_id="run-a", idempotency_key=key)
        assert again.start_workflow(echo, 1).run_id == "run-a"
    assert engine.with_options(idempotency_key="key-a").start_workflow(echo, 1).run_id == "run-a"


async def undo_async(x: int) -> None:
    return None


@durably.workflow(name="id.async_undo")
def async_undo_in_sync() -> str:
    try:
        durably.compensate(undo_async, 1)
    except TypeError as exc:
        return str(exc)
    return "accepted"


def test_an_async_compensation_in_a_sync_workflow_is_refused(engine: durably.Engine) -> None:
    said = engine.start_workflow(async_undo_in_sync).result(timeout=10)
    assert "async undo action cannot run in sync workflow 'id.async_undo'" in said
