"""Clients and workflow handles (see ``cadenza.sdk.client``)."""

from cadenza.sdk.client import Client, TLSConfig, WorkflowHandle
from cadenza.sdk.history import WorkflowHistory

__all__ = ["Client", "TLSConfig", "WorkflowHandle", "WorkflowHistory"]
