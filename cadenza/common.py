"""Value types shared by clients and workflows (see ``cadenza.sdk.common``)."""

from cadenza.sdk.common import RetryPolicy, WorkflowIDReusePolicy

__all__ = ["RetryPolicy", "WorkflowIDReusePolicy"]
