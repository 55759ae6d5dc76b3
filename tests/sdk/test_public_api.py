"""The public names users import are pinned: changing them is a decision, not an accident."""

from __future__ import annotations

from cadenza.sdk import activity, common, converter, exceptions, workflow


def test_workflow_exports() -> None:
    assert sorted(workflow.__all__) == [
        "ALL_COMPLETED",
        "ActivityCancellationType",
        "ActivityHandle",
        "ChildWorkflowCancellationType",
        "ChildWorkflowHandle",
        "ExternalWorkflowHandle",
        "FIRST_COMPLETED",
        "FIRST_EXCEPTION",
        "HandlerUnfinishedPolicy",
        "ParentClosePolicy",
        "ParentInfo",
        "QueryDefinition",
        "SessionInfo",
        "SessionState",
        "SignalDefinition",
        "UpdateDefinition",
        "WorkflowDefinition",
        "WorkflowInfo",
        "all_handlers_finished",
        "continue_as_new",
        "create_session",
        "current_session",
        "defn",
        "deprecate_patch",
        "execute_activity",
        "execute_activity_class",
        "execute_activity_method",
        "execute_child_workflow",
        "execute_local_activity",
        "execute_local_activity_class",
        "execute_local_activity_method",
        "get_dynamic_query_handler",
        "get_dynamic_signal_handler",
        "get_dynamic_update_handler",
        "get_external_workflow_handle",
        "get_external_workflow_handle_for",
        "get_last_completion_result",
        "get_last_failure",
        "get_query_handler",
        "get_signal_handler",
        "get_update_handler",
        "has_last_completion_result",
        "in_workflow",
        "info",
        "init",
        "instance",
        "logger",
        "memo",
        "memo_value",
        "now",
        "patched",
        "payload_converter",
        "query",
        "random",
        "recreate_session",
        "run",
        "set_dynamic_query_handler",
        "set_dynamic_signal_handler",
        "set_dynamic_update_handler",
        "set_query_handler",
        "set_signal_handler",
        "set_update_handler",
        "side_effect",
        "signal",
        "sleep",
        "start_activity",
        "start_activity_class",
        "start_activity_method",
        "start_child_workflow",
        "start_local_activity",
        "start_local_activity_class",
        "start_local_activity_method",
        "time",
        "unsafe",
        "update",
        "upsert_search_attributes",
        "uuid4",
        "wait",
        "wait_condition",
    ]


def test_activity_exports() -> None:
    assert sorted(activity.__all__) == [
        "ActivityContext",
        "ActivityDefinition",
        "ActivityInfo",
        "CompleteAsyncError",
        "defn",
        "heartbeat",
        "in_activity",
        "info",
        "is_cancelled",
        "is_worker_shutdown",
        "logger",
        "payload_converter",
        "raise_complete_async",
        "wait_for_cancelled",
        "wait_for_cancelled_sync",
    ]


def test_exception_exports_share_one_root() -> None:
    for name in exceptions.__all__:
        value = getattr(exceptions, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert issubclass(value, exceptions.CadenzaError), name
    assert issubclass(exceptions.NondeterminismError, exceptions.WorkflowTaskError)
    assert issubclass(exceptions.PayloadEncodeError, TypeError)
    assert not issubclass(exceptions.WorkflowTaskError, exceptions.FailureError)


def test_other_exports() -> None:
    assert sorted(common.__all__) == [
        "QueryRejectCondition",
        "RawValue",
        "RetryPolicy",
        "SearchAttributeIndexedValueType",
        "SearchAttributeKey",
        "SearchAttributePair",
        "SearchAttributeUpdate",
        "TypedSearchAttributes",
        "WorkflowIDConflictPolicy",
        "WorkflowIDReusePolicy",
        "ms_to_timedelta",
        "timedelta_to_ms",
    ]
    for name in (
        "DataConverter",
        "PayloadCodec",
        "RawValue",
        "default_converter",
        "exception_to_failure",
        "failure_to_exception",
    ):
        assert name in converter.__all__
    for module in (activity, common, converter, exceptions, workflow):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_temporalio_module_names_import() -> None:
    """The modules temporalio's samples import from, under Cadenza's package."""
    from cadenza.client import TLSConfig as ClientTLS
    from cadenza.converter import DataConverter, default
    from cadenza.envconfig import ClientConfig
    from cadenza.service import RPCError, TLSConfig
    from cadenza.testing import ActivityEnvironment, WorkflowEnvironment

    assert TLSConfig is ClientTLS and issubclass(RPCError, Exception)
    assert isinstance(default(), DataConverter)
    assert callable(ClientConfig.load_client_connect_config)
    assert ActivityEnvironment and WorkflowEnvironment
