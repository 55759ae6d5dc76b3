"""Synthetic histories for runtime tests: the events an engine would write, built step by step."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from cadenza.schemas.events import Command, CommandType, EventType, HistoryEvent
from cadenza.sdk._runtime import WorkflowInstance
from cadenza.sdk._runtime.local_activities import LocalActivityOutcome, LocalActivityRequest
from cadenza.sdk.converter import default_converter
from cadenza.sdk.workflow import WorkflowDefinition

START_US = 1_700_000_000_000_000
"""A fixed start time so tests can assert workflow time."""


def payloads(*values: Any) -> list[dict[str, Any]]:
    return default_converter().to_payloads(values)


def decode(payload_list: list[dict[str, Any]] | None) -> list[Any]:
    return default_converter().from_payloads(payload_list)


def json_value(payload: dict[str, Any]) -> Any:
    return json.loads(payload["data"])


class HistoryBuilder:
    """Appends events the way the engine does, including the events that commands produce."""

    def __init__(
        self, workflow_type: str, *args: Any, task_queue: str = "tq", start_us: int = START_US
    ) -> None:
        self.events: list[HistoryEvent] = []
        self.now_us = start_us
        self.task_queue = task_queue
        self.add(
            EventType.WORKFLOW_EXECUTION_STARTED,
            {
                "workflow_type": workflow_type,
                "task_queue": task_queue,
                "input": payloads(*args),
                "workflow_execution_timeout_ms": 0,
                "workflow_run_timeout_ms": 0,
                "workflow_task_timeout_ms": 10_000,
                "attempt": 1,
                "first_execution_run_id": "run-1",
                "memo": {},
                "search_attributes": {},
                "header": {},
            },
        )
        self._wft_scheduled = 0
        self._wft_started = 0
        self.schedule_wft()

    def add(self, event_type: EventType, attributes: dict[str, Any] | None = None) -> HistoryEvent:
        event = HistoryEvent(
            event_id=len(self.events) + 1,
            event_time=self.now_us,
            event_type=event_type,
            attributes=attributes or {},
        )
        self.events.append(event)
        return event

    def advance(self, seconds: float) -> None:
        self.now_us += int(seconds * 1_000_000)

    # -- workflow tasks ------------------------------------------------------------------------------

    def schedule_wft(self) -> None:
        self._wft_scheduled = self.add(
            EventType.WORKFLOW_TASK_SCHEDULED, {"task_queue": self.task_queue, "attempt": 1}
        ).event_id

    def start_wft(self) -> HistoryEvent:
        event = self.add(EventType.WORKFLOW_TASK_STARTED, {"scheduled_event_id": self._wft_scheduled})
        self._wft_started = event.event_id
        return event

    def fail_wft(self) -> None:
        self.add(
            EventType.WORKFLOW_TASK_FAILED,
            {
                "scheduled_event_id": self._wft_scheduled,
                "started_event_id": self._wft_started,
                "cause": "x",
            },
        )

    def complete_wft(self, commands: Sequence[Command]) -> None:
        """WorkflowTaskCompleted, then one event per command, as the engine records them."""
        completed = self.add(
            EventType.WORKFLOW_TASK_COMPLETED,
            {
                "scheduled_event_id": self._wft_scheduled,
                "started_event_id": self._wft_started,
            },
        ).event_id
        for command in commands:
            attrs = dict(command.attributes)
            kind = command.command_type
            if kind is CommandType.SCHEDULE_ACTIVITY_TASK:
                self.add(
                    EventType.ACTIVITY_TASK_SCHEDULED,
                    {**attrs, "workflow_task_completed_event_id": completed},
                )
            elif kind is CommandType.START_TIMER:
                self.add(EventType.TIMER_STARTED, {**attrs, "workflow_task_completed_event_id": completed})
            elif kind is CommandType.CANCEL_TIMER:
                self.add(EventType.TIMER_CANCELED, {**attrs, "workflow_task_completed_event_id": completed})
            elif kind is CommandType.REQUEST_CANCEL_ACTIVITY_TASK:
                self.add(
                    EventType.ACTIVITY_TASK_CANCEL_REQUESTED,
                    {**attrs, "workflow_task_completed_event_id": completed},
                )
            elif kind is CommandType.COMPLETE_WORKFLOW_EXECUTION:
                self.add(
                    EventType.WORKFLOW_EXECUTION_COMPLETED,
                    {**attrs, "workflow_task_completed_event_id": completed},
                )
            elif kind is CommandType.FAIL_WORKFLOW_EXECUTION:
                self.add(
                    EventType.WORKFLOW_EXECUTION_FAILED,
                    {**attrs, "workflow_task_completed_event_id": completed},
                )
            elif kind is CommandType.CANCEL_WORKFLOW_EXECUTION:
                self.add(
                    EventType.WORKFLOW_EXECUTION_CANCELED,
                    {**attrs, "workflow_task_completed_event_id": completed},
                )
            elif kind is CommandType.RECORD_MARKER:
                self.add(
                    EventType.MARKER_RECORDED,
                    {
                        "marker_name": attrs.get("marker_name", ""),
                        "details": attrs.get("details") or {},
                        "header": attrs.get("header") or {},
                        "failure": attrs.get("failure"),
                        "workflow_task_completed_event_id": completed,
                    },
                )
            elif kind is CommandType.UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
                self.add(
                    EventType.UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
                    {**attrs, "workflow_task_completed_event_id": completed},
                )
            else:
                raise AssertionError(f"builder does not know {kind}")

    def new_wft(self) -> None:
        self.schedule_wft()
        self.start_wft()

    # -- things that happen between tasks ------------------------------------------------------------

    def scheduled_id(self, activity_id: str) -> int:
        for event in self.events:
            if (
                event.event_type is EventType.ACTIVITY_TASK_SCHEDULED
                and event.attributes["activity_id"] == activity_id
            ):
                return event.event_id
        raise KeyError(activity_id)

    def timer_started_id(self, timer_id: str) -> int:
        for event in self.events:
            if event.event_type is EventType.TIMER_STARTED and event.attributes["timer_id"] == timer_id:
                return event.event_id
        raise KeyError(timer_id)

    def activity_completed(self, activity_id: str, result: Any) -> None:
        scheduled = self.scheduled_id(activity_id)
        started = self.add(
            EventType.ACTIVITY_TASK_STARTED, {"scheduled_event_id": scheduled, "attempt": 1}
        ).event_id
        self.add(
            EventType.ACTIVITY_TASK_COMPLETED,
            {
                "result": payloads(result),
                "scheduled_event_id": scheduled,
                "started_event_id": started,
            },
        )

    def activity_failed(
        self,
        activity_id: str,
        failure: dict[str, Any],
        event_type: EventType = EventType.ACTIVITY_TASK_FAILED,
    ) -> None:
        scheduled = self.scheduled_id(activity_id)
        started = self.add(
            EventType.ACTIVITY_TASK_STARTED, {"scheduled_event_id": scheduled, "attempt": 1}
        ).event_id
        self.add(
            event_type,
            {
                "failure": failure,
                "scheduled_event_id": scheduled,
                "started_event_id": started,
                "retry_state": "NON_RETRYABLE_FAILURE",
            },
        )

    def timer_fired(self, timer_id: str) -> None:
        self.add(
            EventType.TIMER_FIRED, {"timer_id": timer_id, "started_event_id": self.timer_started_id(timer_id)}
        )

    def signal(self, name: str, *args: Any) -> None:
        self.add(EventType.WORKFLOW_EXECUTION_SIGNALED, {"signal_name": name, "input": payloads(*args)})

    def cancel_requested(self) -> None:
        self.add(EventType.WORKFLOW_EXECUTION_CANCEL_REQUESTED, {"cause": "test"})


class Driver:
    """Plays engine and worker: feeds the instance the events added since its last activation."""

    def __init__(
        self, workflow_cls: type, *args: Any, workflow_id: str = "wf-1", run_id: str = "run-1"
    ) -> None:
        self.defn = WorkflowDefinition.from_class(workflow_cls)
        self.history = HistoryBuilder(self.defn.name, *args)
        self.instance = self.new_instance(workflow_id=workflow_id, run_id=run_id)

    def new_instance(self, *, workflow_id: str = "wf-1", run_id: str = "run-1") -> WorkflowInstance:
        return WorkflowInstance(
            self.defn,
            namespace="default",
            workflow_id=workflow_id,
            run_id=run_id,
            converter=default_converter(),
        )

    def step(self) -> list[Command]:
        """Start a workflow task (scheduling one if needed), activate, record the commands."""
        if self.history.events[-1].event_type is not EventType.WORKFLOW_TASK_SCHEDULED:
            self.history.schedule_wft()
        self.history.start_wft()
        commands = self.instance.activate(self.history.events[self.instance.last_event_id :])
        self.history.complete_wft(commands)
        return commands

    def step_local(
        self, run: Callable[[LocalActivityRequest], LocalActivityOutcome]
    ) -> tuple[list[Command], list[LocalActivityRequest]]:
        """As :meth:`step`, playing the worker for local activities: ``run`` gives each outcome.

        Returns the task's commands and the requests that were run.
        """
        if self.history.events[-1].event_type is not EventType.WORKFLOW_TASK_SCHEDULED:
            self.history.schedule_wft()
        self.history.start_wft()
        instance = self.instance
        commands = instance.activate(self.history.events[instance.last_event_id :])
        ran: list[LocalActivityRequest] = []
        while instance.task_open:
            requests = instance.take_local_activities()
            for request in requests:
                instance.resolve_local_activity(request.seq, run(request))
            ran.extend(requests)
            commands = instance.resume()
        self.history.complete_wft(commands)
        return commands, ran

    def replay(self) -> list[Command]:
        """A fresh instance fed the whole history so far (must end with WorkflowTaskStarted)."""
        return self.new_instance().activate(self.history.events)
