"""Clients and workflow handles (see ``cadenza.sdk.client``)."""

from cadenza.sdk.client import Client, WorkflowHandle
from cadenza.sdk.history import WorkflowHistory

__all__ = ["Client", "WorkflowHandle", "WorkflowHistory"]
