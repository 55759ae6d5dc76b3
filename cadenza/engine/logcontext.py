"""What a log line is about: namespace, workflow id, run id, shard id and cluster.

Set once where work enters (the gRPC boundary, a shard's queue handing a task to its handler) in a
context variable, and added to every record by ``ContextFilter``, so the log calls themselves
stay as they are. ``--log-format json`` (``cadenza.ops.logsetup``) installs the filter and turns
binding on; with the default text format nothing is bound and the lines stay as they were.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = [
    "FIELDS",
    "ContextFilter",
    "bind",
    "bind_request",
    "bound",
    "current",
    "enable",
    "enabled",
    "set_cluster",
]

FIELDS = ("namespace", "namespace_id", "workflow_id", "run_id", "shard_id", "cluster")
"""``namespace`` (the name) where a request names it; the queues know runs by ``namespace_id``."""

_CONTEXT: ContextVar[Mapping[str, Any] | None] = ContextVar("cadenza_log_context", default=None)
_state = {"enabled": False, "cluster": ""}


def enable(on: bool = True) -> None:
    """Bind context from now on (the JSON log format does this)."""
    _state["enabled"] = on


def enabled() -> bool:
    return bool(_state["enabled"])


def set_cluster(name: str) -> None:
    """The cluster this process serves: on every line (one value per process)."""
    _state["cluster"] = name


def current() -> Mapping[str, Any]:
    return _CONTEXT.get() or {}


def bind(**fields: Any) -> None:
    """Add ``fields`` (None and empty values are left out) to this task's context; a task started
    from here inherits it, and the caller's context is untouched (asyncio copies it per task)."""
    values = {k: v for k, v in fields.items() if v not in (None, "")}
    if values:
        _CONTEXT.set({**current(), **values})


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """``bind`` for the duration of a block (for code that runs several items in one task)."""
    token = _CONTEXT.set({**current(), **{k: v for k, v in fields.items() if v not in (None, "")}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def bind_request(record: Mapping[str, Any]) -> None:
    """Bind what a decoded API request names: its namespace, and the run by execution, by workflow
    id, or by task token."""
    namespace = record.get("namespace")
    execution = record.get("execution") or record.get("workflow_execution")
    workflow_id = record.get("workflow_id")
    run_id = record.get("run_id")
    if isinstance(execution, Mapping):
        workflow_id = execution.get("workflow_id") or workflow_id
        run_id = execution.get("run_id") or run_id
    token = record.get("task_token")
    if not workflow_id and isinstance(token, bytes) and token:
        try:
            from cadenza.engine.history.workflow_tasks import decode_token

            _, workflow_id, run_id, *_ = decode_token(token)
        except Exception:
            pass  # not a workflow token (an activity's by id, a malformed one): nothing to bind
    bind(namespace=namespace if isinstance(namespace, str) else None, workflow_id=workflow_id, run_id=run_id)


class ContextFilter(logging.Filter):
    """Copies the bound fields (and the cluster) onto each record, unless the call set them."""

    def filter(self, record: logging.LogRecord) -> bool:
        cluster = _state["cluster"]
        if cluster and not hasattr(record, "cluster"):
            record.cluster = cluster
        for key, value in (_CONTEXT.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True
