"""Test environments (see ``cadenza.sdk.testing`` and ``cadenza.sdk.activity_testing``)."""

from cadenza.sdk.activity_testing import ActivityEnvironment
from cadenza.sdk.testing import WorkflowEnvironment

__all__ = ["ActivityEnvironment", "WorkflowEnvironment"]
