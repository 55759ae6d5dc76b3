"""The workflow runtime: a deterministic event loop and the instance that replays history on it.

Private to the SDK; the worker uses :class:`WorkflowInstance`, users use ``cadenza.sdk.workflow``.
"""

from cadenza.sdk._runtime.activities import ActivityHandle
from cadenza.sdk._runtime.definitions import QueryDefinition, SignalDefinition, WorkflowDefinition
from cadenza.sdk._runtime.info import ParentInfo, WorkflowInfo
from cadenza.sdk._runtime.instance import StaleInstanceError, WorkflowInstance, current_instance, in_workflow
from cadenza.sdk._runtime.loop import WorkflowEventLoop

__all__ = [
    "ActivityHandle",
    "ParentInfo",
    "QueryDefinition",
    "SignalDefinition",
    "StaleInstanceError",
    "WorkflowDefinition",
    "WorkflowEventLoop",
    "WorkflowInfo",
    "WorkflowInstance",
    "current_instance",
    "in_workflow",
]
