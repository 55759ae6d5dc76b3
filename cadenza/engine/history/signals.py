"""Signals of one run written together (group commit at the run level, see ``HistoryEngine.signal``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from cadenza.engine.errors import ResourceExhaustedError, ServiceError
from cadenza.engine.history import limits
from cadenza.engine.history.mutation import Mutation, require_running
from cadenza.schemas.events import EventType


@dataclass(slots=True)
class PendingSignal:
    signal_name: str
    input: list[dict[str, Any]] | None
    identity: str
    request_id: str
    done: asyncio.Future[None]
    header: dict[str, Any] = field(default_factory=dict)


def apply_batch(m: Mutation, batch: list[PendingSignal], outcomes: dict[int, ServiceError]) -> None:
    """The rule of one write of a batch: each signal is checked on its own (its refusal goes to
    ``outcomes`` by index), so one refused signal does not refuse the others."""
    outcomes.clear()
    ms = m.ms
    workflow_id = ms.info.workflow_id
    applied = False
    for n, s in enumerate(batch):
        try:
            require_running(ms)
            if s.request_id and s.request_id in ms.signal_request_ids:
                continue
            if ms.info.signal_count + len(ms.buffered_events) >= limits.MAX_SIGNALS:
                raise ResourceExhaustedError(
                    f"workflow {workflow_id!r} has received {ms.info.signal_count} signals, "
                    f"the limit of {limits.MAX_SIGNALS} per run; continue it as new to receive more",
                    limit=limits.MAX_SIGNALS,
                )
        except ServiceError as e:
            outcomes[n] = e
            continue
        if s.request_id:
            ms.signal_request_ids.add(s.request_id)
        ms.add_or_buffer(
            EventType.WORKFLOW_EXECUTION_SIGNALED,
            m.now,
            {"signal_name": s.signal_name, "input": s.input, "identity": s.identity, "header": s.header},
        )
        applied = True
    if applied:
        m.schedule_workflow_task()
    else:
        m.noop = True
