"""The web UI: find a workflow, read its history, act on it, see the task queues and clusters.

Served by the server itself (``cadenza server start-dev --ui-port``, or the config's ``ui`` block)
from this package: a JSON API under ``/api/v1`` (``api.py``) and static pages (``static/``).
"""

from cadenza.ui.api import UIApi, UIService
from cadenza.ui.server import DEFAULT_UI_PORT, UIServer, UISettings, create_app

__all__ = ["DEFAULT_UI_PORT", "UIApi", "UIServer", "UIService", "UISettings", "create_app"]
