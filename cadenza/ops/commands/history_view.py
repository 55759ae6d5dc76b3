"""Showing workflows to people: history rows, decoded payloads, and following a run live."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict
from typing import Any

import click

from cadenza.ops.commands.common import fmt_time
from cadenza.schemas.events import CLOSE_EVENT_TYPES, EventType, HistoryEvent
from cadenza.schemas.service import (
    DescribeWorkflowResponse,
    GetHistoryRequest,
    WorkflowExecution,
    WorkflowExecutionInfo,
)
from cadenza.sdk.converter import default_converter

_ACTIVITY_DONE = {
    EventType.ACTIVITY_TASK_COMPLETED,
    EventType.ACTIVITY_TASK_FAILED,
    EventType.ACTIVITY_TASK_TIMED_OUT,
    EventType.ACTIVITY_TASK_CANCELED,
}
_CLOSE_STATUS = {
    EventType.WORKFLOW_EXECUTION_COMPLETED: "COMPLETED",
    EventType.WORKFLOW_EXECUTION_FAILED: "FAILED",
    EventType.WORKFLOW_EXECUTION_TIMED_OUT: "TIMED_OUT",
    EventType.WORKFLOW_EXECUTION_CANCELED: "CANCELED",
    EventType.WORKFLOW_EXECUTION_TERMINATED: "TERMINATED",
    EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "CONTINUED_AS_NEW",
}


def to_json(value: Any) -> str:
    return json.dumps(value, default=str)


def _is_payload(v: Any) -> bool:
    return isinstance(v, dict) and set(v) == {"metadata", "data"} and isinstance(v.get("data"), bytes)


def readable(value: Any) -> Any:
    """Payloads decoded with the default converter (raw text if that fails); bytes as text."""
    if _is_payload(value):
        try:
            return default_converter().from_payload(value)
        except Exception:
            return value["data"].decode(errors="replace")
    if isinstance(value, dict):
        return {k: readable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [readable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value


def decode_map(payloads: dict[str, Any]) -> dict[str, Any]:
    return {k: readable(v) for k, v in payloads.items()}


def event_row(e: HistoryEvent, *, width: int | None = 120) -> tuple[Any, ...]:
    """ID, time, type and a one-line summary of the attributes (cut at ``width``; JSON output has all)."""
    # Empty and default attributes are noise in a table: keep what says something.
    attrs = {k: readable(v) for k, v in e.attributes.items() if v not in (None, "", 0, {}, [], False)}
    details = to_json(attrs)
    if width is not None and len(details) > width:
        details = details[: width - 1] + "…"
    return e.event_id, fmt_time(e.event_time), e.event_type.pascal_name, details


def describe_dict(d: DescribeWorkflowResponse) -> dict[str, Any]:
    out = asdict(d)
    # A client's description carries decoded values beside the payloads it was built from.
    for raw_key in ("raw_memo", "raw_search_attributes", "search_attribute_types"):
        out.pop(raw_key, None)
    out["memo"] = decode_map(getattr(d, "raw_memo", d.memo))
    out["search_attributes"] = decode_map(getattr(d, "raw_search_attributes", d.search_attributes))
    out["pending_activities"] = [readable(a) for a in out["pending_activities"]]
    return out


def execution_dict(e: WorkflowExecutionInfo) -> dict[str, Any]:
    out = asdict(e)
    out["search_attributes"] = decode_map(e.search_attributes)
    out["memo"] = decode_map(e.memo)
    return out


async def observe(
    client: Any, workflow_id: str, run_id: str | None, *, json_lines: bool, timeout: float | None
) -> str:
    """Prints each event as it is written until the run closes; returns the close status."""
    return await asyncio.wait_for(_follow(client, workflow_id, run_id, json_lines), timeout)


async def _follow(client: Any, workflow_id: str, run_id: str | None, json_lines: bool) -> str:
    live = not json_lines and sys.stdout.isatty()
    progress = _Progress(live)
    execution = WorkflowExecution(workflow_id, run_id or "")
    token: bytes | None = None
    try:
        while True:
            resp = await client.service.get_workflow_execution_history(
                GetHistoryRequest(
                    client.namespace, execution, next_page_token=token, wait_new_event=True, timeout_s=30.0
                )
            )
            # Pin the run: a continue-as-new starts another run that this one's history does not include.
            execution = WorkflowExecution(workflow_id, resp.run_id or execution.run_id)
            for e in resp.events:
                if json_lines:
                    click.echo(
                        json.dumps(
                            {
                                "event_id": e.event_id,
                                "event_time": e.event_time,
                                "event_type": e.event_type.pascal_name,
                                "attributes": readable(e.attributes),
                            },
                            default=str,
                        )
                    )
                else:
                    progress.event(e)
                if e.event_type in CLOSE_EVENT_TYPES:
                    return _CLOSE_STATUS[e.event_type]
            if resp.next_page_token is None and not resp.events:
                # Nothing more will come (the run closed before we looked at it).
                d = await client.service.describe_workflow_execution(client.namespace, execution)
                return str(d.status)
            token = resp.next_page_token
    finally:
        progress.close()


class _Progress:
    """One line per event; on a terminal, a live bar of activities finished out of scheduled."""

    def __init__(self, live: bool) -> None:
        self.scheduled = 0
        self.done = 0
        self.events = 0
        self._bar: Any = None
        if live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                transient=True,
            )
            self._task = self._bar.add_task("activities", total=0)
            self._bar.start()

    def event(self, e: HistoryEvent) -> None:
        self.events += 1
        if e.event_type == EventType.ACTIVITY_TASK_SCHEDULED:
            self.scheduled += 1
        elif e.event_type in _ACTIVITY_DONE:
            self.done += 1
        row = event_row(e)
        line = f"{row[0]:>4}  {row[1]}  {row[2]:<36} {row[3]}"
        if self._bar is not None:
            self._bar.console.print(line, highlight=False, markup=False)
            self._bar.update(
                self._task,
                total=self.scheduled,
                completed=self.done,
                description=f"{self.events} events; activities",
            )
        else:
            click.echo(line)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
