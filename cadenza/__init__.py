"""Cadenza: a durable, event-sourced workflow engine.

Users write ``from cadenza import workflow, activity``; clients, workers and the rest live in
``cadenza.client``, ``cadenza.worker``, ``cadenza.common``, ``cadenza.exceptions`` and
``cadenza.testing``.
"""

import sys

from cadenza.sdk import activity, workflow

# ``import cadenza.workflow`` and ``from cadenza.workflow import X`` reach the same modules as
# ``from cadenza import workflow`` (as they do in temporalio).
sys.modules.setdefault("cadenza.workflow", workflow)
sys.modules.setdefault("cadenza.activity", activity)

__all__ = ["activity", "workflow"]
