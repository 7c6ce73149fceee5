"""The public API is pinned: a change here is a deliberate, reviewed change."""

import durably

EXPECTED = {
    "Backfilled",
    "Schedule",
    "ScheduleDescription",
    "ScheduleError",
    "ScheduleInfo",
    "ScheduleNotFound",
    "ScheduleSpec",
    "schedule",
    "schedule_info",
    "HistoryEvent",
    "Retention",
    "RunPage",
    "NoWorker",
    "WorkflowTimedOut",
    "heartbeat",
    "current_run",
    "get_logger",
    "RunInfo",
    "Backoff",
    "ChildFailed",
    "ChildHandle",
    "DurablyError",
    "Engine",
    "ErrorInfo",
    "FatalError",
    "IdempotencyConflict",
    "InvalidRunState",
    "LeaseLost",
    "NonDeterminismError",
    "NotInWorkflow",
    "Queue",
    "RetryableError",
    "Run",
    "RunHandle",
    "RunNotFound",
    "RunStatus",
    "SQLiteStore",
    "SerializationError",
    "Step",
    "StepFailed",
    "StepRecord",
    "StepTimeout",
    "StoreClosed",
    "StoreError",
    "Workflow",
    "WorkflowCancelled",
    "WorkflowFailed",
    "WorkflowNotFound",
    "__version__",
    "compensate",
    "continue_as_new",
    "gather",
    "is_cancelled",
    "map",
    "map_async",
    "now",
    "patched",
    "random",
    "set_event",
    "set_event_async",
    "shield",
    "sleep",
    "sleep_async",
    "sleep_until",
    "sleep_until_async",
    "start_child",
    "start_child_async",
    "step",
    "uuid4",
    "wait_for_signal",
    "wait_for_signal_async",
    "workflow",
}


def test_all_is_pinned() -> None:
    assert set(durably.__all__) == EXPECTED
    for name in durably.__all__:
        assert hasattr(durably, name), name


def test_errors_share_one_base() -> None:
    for name in durably.__all__:
        obj = getattr(durably, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, durably.DurablyError), name


def test_run_status_values() -> None:
    assert [s.value for s in durably.RunStatus] == [
        "pending",
        "running",
        "sleeping",
        "waiting",
        "completed",
        "failed",
        "cancelled",
    ]


def test_the_testing_kit_is_pinned() -> None:
    import durably.testing

    assert set(durably.testing.__all__) == {
        "CrashPoint",
        "CrashSweepFailed",
        "SweepReport",
        "TestEngine",
        "VirtualClock",
        "crash_sweep",
        "replay_check",
    }
    for name in durably.testing.__all__:
        assert hasattr(durably.testing, name), name
