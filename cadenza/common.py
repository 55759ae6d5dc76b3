"""Value types shared by clients and workflows (see ``cadenza.sdk.common``)."""

from cadenza.sdk.common import QueryRejectCondition, RetryPolicy, WorkflowIDReusePolicy

__all__ = ["QueryRejectCondition", "RetryPolicy", "WorkflowIDReusePolicy"]
