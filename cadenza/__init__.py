"""Cadenza: a durable, event-sourced workflow engine.

Users write ``from cadenza import workflow, activity``; clients, workers and the rest live in
``cadenza.client``, ``cadenza.worker``, ``cadenza.common``, ``cadenza.exceptions`` and
``cadenza.testing``.
"""

from cadenza.sdk import activity, workflow

__all__ = ["activity", "workflow"]
