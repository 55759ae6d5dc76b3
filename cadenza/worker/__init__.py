"""Workers and the replayer (see ``cadenza.sdk.worker``).

``SandboxedWorkflowRunner``, ``UnsandboxedWorkflowRunner`` and ``SandboxRestrictions`` (also in
``cadenza.worker.workflow_sandbox``) are accepted for temporalio's code and change nothing: workflows
run without an import sandbox.

``Interceptor`` here is the worker's (temporalio's ``temporalio.worker.Interceptor``), with the
inbound and outbound interceptor classes and their inputs (see ``cadenza.sdk.interceptor``).
"""

from cadenza.sdk._runtime.replayer import WorkflowReplayResult, WorkflowReplayResults
from cadenza.sdk.interceptor import (
    ActivityInboundInterceptor,
    ActivityOutboundInterceptor,
    ContinueAsNewInput,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    HandleQueryInput,
    HandleSignalInput,
    HandleUpdateInput,
    SignalChildWorkflowInput,
    SignalExternalWorkflowInput,
    StartActivityInput,
    StartChildWorkflowInput,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)
from cadenza.sdk.interceptor import WorkerInterceptor as Interceptor
from cadenza.sdk.worker import Replayer, Worker
from cadenza.sdk.worker_pool import WorkerPool
from cadenza.worker.workflow_sandbox import (
    SandboxedWorkflowRunner,
    SandboxRestrictions,
    UnsandboxedWorkflowRunner,
)

__all__ = [
    "ActivityInboundInterceptor",
    "ActivityOutboundInterceptor",
    "ContinueAsNewInput",
    "ExecuteActivityInput",
    "ExecuteWorkflowInput",
    "HandleQueryInput",
    "HandleSignalInput",
    "HandleUpdateInput",
    "Interceptor",
    "Replayer",
    "SandboxRestrictions",
    "SandboxedWorkflowRunner",
    "SignalChildWorkflowInput",
    "SignalExternalWorkflowInput",
    "StartActivityInput",
    "StartChildWorkflowInput",
    "StartLocalActivityInput",
    "UnsandboxedWorkflowRunner",
    "Worker",
    "WorkerPool",
    "WorkflowInboundInterceptor",
    "WorkflowInterceptorClassInput",
    "WorkflowOutboundInterceptor",
    "WorkflowReplayResult",
    "WorkflowReplayResults",
]
