"""Clients and workflow handles (see ``cadenza.sdk.client``).

``WorkflowFailureError`` is also importable from here, where temporalio users look for it.
``Interceptor`` and ``OutboundInterceptor`` are the client's interceptor classes (temporalio's
names; see ``cadenza.sdk.interceptor``), with the inputs of the calls they wrap.
"""

from cadenza.sdk.async_activity import AsyncActivityHandle
from cadenza.sdk.client import Client, TLSConfig, WorkflowHandle
from cadenza.sdk.client_updates import (
    WithStartWorkflowOperation,
    WorkflowIDConflictPolicy,
    WorkflowUpdateHandle,
    WorkflowUpdateStage,
)
from cadenza.sdk.description import WorkflowExecutionDescription, WorkflowExecutionStatus
from cadenza.sdk.exceptions import (
    WorkflowFailureError,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from cadenza.sdk.history import (
    WorkflowHistory,
    WorkflowHistoryEventAsyncIterator,
    WorkflowHistoryEventFilterType,
)
from cadenza.sdk.interceptor import (
    AsyncActivityIDReference,
    CancelWorkflowInput,
    CompleteAsyncActivityInput,
    CountWorkflowsInput,
    DescribeWorkflowInput,
    FailAsyncActivityInput,
    FetchWorkflowHistoryEventsInput,
    HeartbeatAsyncActivityInput,
    ListWorkflowsInput,
    QueryWorkflowInput,
    ReportCancellationAsyncActivityInput,
    SignalWorkflowInput,
    StartWorkflowInput,
    StartWorkflowUpdateInput,
    StartWorkflowUpdateWithStartInput,
    TerminateWorkflowInput,
    UpdateWithStartStartWorkflowInput,
    UpdateWithStartUpdateWorkflowInput,
)
from cadenza.sdk.interceptor import ClientInterceptor as Interceptor
from cadenza.sdk.interceptor import ClientOutboundInterceptor as OutboundInterceptor
from cadenza.sdk.listing import (
    WorkflowExecution,
    WorkflowExecutionAsyncIterator,
    WorkflowExecutionCount,
    WorkflowExecutionCountAggregationGroup,
)

__all__ = [
    "AsyncActivityHandle",
    "AsyncActivityIDReference",
    "CancelWorkflowInput",
    "Client",
    "CompleteAsyncActivityInput",
    "CountWorkflowsInput",
    "DescribeWorkflowInput",
    "FailAsyncActivityInput",
    "FetchWorkflowHistoryEventsInput",
    "HeartbeatAsyncActivityInput",
    "Interceptor",
    "ListWorkflowsInput",
    "OutboundInterceptor",
    "QueryWorkflowInput",
    "ReportCancellationAsyncActivityInput",
    "SignalWorkflowInput",
    "StartWorkflowInput",
    "StartWorkflowUpdateInput",
    "StartWorkflowUpdateWithStartInput",
    "TLSConfig",
    "TerminateWorkflowInput",
    "UpdateWithStartStartWorkflowInput",
    "UpdateWithStartUpdateWorkflowInput",
    "WithStartWorkflowOperation",
    "WorkflowExecution",
    "WorkflowExecutionAsyncIterator",
    "WorkflowExecutionCount",
    "WorkflowExecutionCountAggregationGroup",
    "WorkflowExecutionDescription",
    "WorkflowExecutionStatus",
    "WorkflowFailureError",
    "WorkflowHandle",
    "WorkflowHistory",
    "WorkflowHistoryEventAsyncIterator",
    "WorkflowHistoryEventFilterType",
    "WorkflowIDConflictPolicy",
    "WorkflowQueryFailedError",
    "WorkflowUpdateFailedError",
    "WorkflowUpdateHandle",
    "WorkflowUpdateRPCTimeoutOrCancelledError",
    "WorkflowUpdateStage",
]
