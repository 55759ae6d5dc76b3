"""Test environments (see ``cadenza.sdk.testing``)."""

from cadenza.sdk.testing import WorkflowEnvironment

__all__ = ["WorkflowEnvironment"]
