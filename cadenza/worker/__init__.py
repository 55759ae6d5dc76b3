"""Workers and the replayer (see ``cadenza.sdk.worker``).

``SandboxedWorkflowRunner``, ``UnsandboxedWorkflowRunner`` and ``SandboxRestrictions`` (also in
``cadenza.worker.workflow_sandbox``) are accepted for temporalio's code and change nothing: workflows
run without an import sandbox.
"""

from cadenza.sdk._runtime.replayer import WorkflowReplayResult, WorkflowReplayResults
from cadenza.sdk.worker import Replayer, Worker
from cadenza.sdk.worker_pool import WorkerPool
from cadenza.worker.workflow_sandbox import (
    SandboxedWorkflowRunner,
    SandboxRestrictions,
    UnsandboxedWorkflowRunner,
)

__all__ = [
    "Replayer",
    "SandboxRestrictions",
    "SandboxedWorkflowRunner",
    "UnsandboxedWorkflowRunner",
    "Worker",
    "WorkerPool",
    "WorkflowReplayResult",
    "WorkflowReplayResults",
]
