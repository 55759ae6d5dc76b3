"""Limits and request validation, with the anchors' defaults.

Everything here runs BEFORE a write, so a refused request changes nothing, and every message names
the field, the value and the limit.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from cadenza.engine.errors import InvalidArgumentError
from cadenza.engine.history.chaining import validate_cron
from cadenza.engine.history.mutation import Mutation, close_run
from cadenza.schemas.events import EventType

if TYPE_CHECKING:
    from cadenza.schemas.service import StartWorkflowRequest

log = logging.getLogger("cadenza.history")

BLOB_SIZE_LIMIT = 2 * 1024 * 1024
"""One payload list (an input, a result, signal arguments, heartbeat details)."""
MAX_ID_LENGTH = 1000
DEFAULT_WORKFLOW_TASK_TIMEOUT_MS = 10_000
MAX_WORKFLOW_TASK_TIMEOUT_MS = 120_000
HISTORY_COUNT_WARN = 10_240
HISTORY_COUNT_LIMIT = 51_200
HISTORY_SIZE_WARN = 10 * 1024 * 1024
HISTORY_SIZE_LIMIT = 50 * 1024 * 1024

MAX_PENDING_ACTIVITIES = 2_000
MAX_PENDING_CHILDREN = 2_000
MAX_PENDING_EXTERNAL_SIGNALS = 2_000
MAX_SIGNALS = 10_000
"""Per run, as the anchors: beyond these a command or a signal is refused, naming the limit."""
MAX_UPDATES = 2_000
"""Updates per run (accepted ones and those waiting), as the anchors."""
MAX_IN_FLIGHT_UPDATES = 10
"""Updates of one run admitted or accepted but not completed yet, as the anchors."""

WORKFLOW_ID_REUSE_POLICIES = (
    "ALLOW_DUPLICATE",
    "ALLOW_DUPLICATE_FAILED_ONLY",
    "REJECT_DUPLICATE",
    "TERMINATE_IF_RUNNING",
)
WORKFLOW_ID_CONFLICT_POLICIES = ("", "UNSPECIFIED", "FAIL", "USE_EXISTING", "TERMINATE_EXISTING")
"""Temporal's WorkflowIdConflictPolicy: what a start does when a run of the id is running
(empty and UNSPECIFIED: FAIL)."""


def payloads_size(payloads: list[dict[str, Any]] | None) -> int:
    if not payloads:
        return 0
    total = 0
    for p in payloads:
        total += len(p.get("data") or b"")
        for k, v in (p.get("metadata") or {}).items():
            total += len(k) + len(v)
    return total


def validate_payloads(field: str, payloads: list[dict[str, Any]] | None) -> None:
    size = payloads_size(payloads)
    if size > BLOB_SIZE_LIMIT:
        raise InvalidArgumentError(
            f"{field} is {size} bytes, over the blob size limit of {BLOB_SIZE_LIMIT} bytes (2 MB)",
            field=field,
            size=size,
            limit=BLOB_SIZE_LIMIT,
        )


def validate_timeout(field: str, value_ms: int) -> None:
    if value_ms < 0:
        raise InvalidArgumentError(f"{field} must not be negative (got {value_ms} ms)", field=field)


def validate_id(field: str, value: str) -> None:
    if not value:
        raise InvalidArgumentError(f"{field} is required", field=field)
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgumentError(
            f"{field} is {len(value)} characters, over the limit of {MAX_ID_LENGTH}", field=field
        )


def validate_start(req: StartWorkflowRequest) -> None:
    validate_id("workflow_id", req.workflow_id)
    validate_id("workflow_type", req.workflow_type)
    validate_id("task_queue", req.task_queue)
    validate_timeout("workflow_execution_timeout", req.workflow_execution_timeout_ms)
    validate_timeout("workflow_run_timeout", req.workflow_run_timeout_ms)
    validate_timeout("workflow_task_timeout", req.workflow_task_timeout_ms)
    if req.workflow_task_timeout_ms > MAX_WORKFLOW_TASK_TIMEOUT_MS:
        raise InvalidArgumentError(
            f"workflow_task_timeout is {req.workflow_task_timeout_ms} ms, over the limit of "
            f"{MAX_WORKFLOW_TASK_TIMEOUT_MS} ms"
        )
    if req.workflow_id_reuse_policy not in WORKFLOW_ID_REUSE_POLICIES:
        raise InvalidArgumentError(
            f"workflow_id_reuse_policy {req.workflow_id_reuse_policy!r} is not one of "
            f"{', '.join(WORKFLOW_ID_REUSE_POLICIES)}"
        )
    conflict = req.workflow_id_conflict_policy
    if conflict not in WORKFLOW_ID_CONFLICT_POLICIES:
        raise InvalidArgumentError(
            f"workflow_id_conflict_policy {conflict!r} is not one of "
            f"{', '.join(p for p in WORKFLOW_ID_CONFLICT_POLICIES if p)}",
            field="workflow_id_conflict_policy",
        )
    if req.workflow_id_reuse_policy == "TERMINATE_IF_RUNNING" and conflict not in ("", "UNSPECIFIED"):
        # Temporal refuses the pair too: the reuse policy would decide about a running run as well.
        raise InvalidArgumentError(
            f"workflow_id_reuse_policy TERMINATE_IF_RUNNING cannot be used together with "
            f"workflow_id_conflict_policy {conflict}; use TERMINATE_EXISTING alone",
            field="workflow_id_conflict_policy",
        )
    validate_timeout("workflow_start_delay", req.workflow_start_delay_ms)
    if req.workflow_start_delay_ms and req.cron_schedule:
        raise InvalidArgumentError(
            f"workflow_start_delay ({req.workflow_start_delay_ms} ms) cannot be used with "
            f"cron_schedule {req.cron_schedule!r}: the schedule decides when each run starts",
            field="workflow_start_delay",
        )
    validate_payloads("input", req.input)
    validate_payloads("signal_input", req.signal_input)
    if req.cron_schedule:
        validate_cron(req.cron_schedule)


def enforce_history_limits(m: Mutation) -> None:
    """Warns past the soft limits and terminates the run past the hard ones, as the anchors do."""
    ms = m.ms
    if not ms.is_running:
        return
    count = ms.next_event_id - 1
    size = ms.info.history_size_bytes
    if count > HISTORY_COUNT_LIMIT or size > HISTORY_SIZE_LIMIT:
        close_run(
            m,
            EventType.WORKFLOW_EXECUTION_TERMINATED,
            {
                "reason": (
                    f"history limit exceeded: {count} events (limit {HISTORY_COUNT_LIMIT}), "
                    f"{size} bytes (limit {HISTORY_SIZE_LIMIT})"
                ),
                "details": None,
                "identity": "cadenza-history",
            },
        )
    elif (count > HISTORY_COUNT_WARN and count - len(ms.pending_events) <= HISTORY_COUNT_WARN) or (
        size > HISTORY_SIZE_WARN and count % 1000 == 0
    ):
        log.warning(
            "history of workflow %s run %s is large: %d events, %d bytes (terminated at %d / %d)",
            ms.info.workflow_id,
            ms.info.run_id,
            count,
            size,
            HISTORY_COUNT_LIMIT,
            HISTORY_SIZE_LIMIT,
        )
