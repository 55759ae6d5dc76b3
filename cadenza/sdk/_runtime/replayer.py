"""The replayer: recorded histories against workflow code, to prove a change keeps determinism."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cadenza.schemas.events import EventType, HistoryEvent
from cadenza.sdk._runtime.definitions import WorkflowDefinition
from cadenza.sdk._runtime.instance import WorkflowInstance
from cadenza.sdk.converter import DataConverter, default_converter
from cadenza.sdk.history import WorkflowHistory

__all__ = ["Replayer", "WorkflowReplayResult", "WorkflowReplayResults"]


@dataclass
class WorkflowReplayResult:
    """The outcome of replaying one history. Replay runs when ``replay_workflow`` is called, so
    the result can be used as is or awaited (temporalio's ``await replayer.replay_workflow(h)``)."""

    history: WorkflowHistory
    replay_failure: Exception | None = None
    """The error replay raised (``NondeterminismError`` or the workflow code's), if it failed."""

    def __await__(self) -> Generator[Any, None, WorkflowReplayResult]:
        return self
        yield  # a generator: awaiting it returns at once


@dataclass
class WorkflowReplayResults:
    """The outcomes of ``replay_workflows``, by run id."""

    replay_failures: dict[str, Exception] = field(default_factory=dict)


class Replayer:
    """Replays recorded histories against workflow code, to prove a code change keeps determinism."""

    def __init__(self, *, workflows: Sequence[type], data_converter: DataConverter | None = None) -> None:
        self._workflows = {
            WorkflowDefinition.from_class(w).name: WorkflowDefinition.from_class(w) for w in workflows
        }
        self._converter = data_converter or default_converter()

    def replay_workflow(
        self, history: WorkflowHistory | str | Path, *, raise_on_replay_failure: bool = True
    ) -> WorkflowReplayResult:
        """Replay one history (or a JSON file of one, as ``cadenza workflow show --output`` writes).

        Raises ``NondeterminismError`` (or the workflow code's error) when replay diverges; with
        ``raise_on_replay_failure=False`` the error is returned in the result instead. The replay
        is done by the time this returns; the result may also be awaited.
        """
        if isinstance(history, str | Path):
            history = WorkflowHistory.from_file(history)
        try:
            self._replay(history)
        except Exception as err:
            if raise_on_replay_failure:
                raise
            return WorkflowReplayResult(history, err)
        return WorkflowReplayResult(history)

    def _replay(self, history: WorkflowHistory) -> None:
        events = history.events
        if not events:
            raise ValueError("history is empty")
        started = events[0]
        wtype = started.attributes.get("workflow_type", "")
        defn = self._workflows.get(wtype)
        if defn is None:
            raise ValueError(
                f"workflow type {wtype!r} is not among the replayer's workflows {sorted(self._workflows)}"
            )
        # Every task that completed in history is replayed and its commands checked against the
        # recorded ones; a synthetic task start at the end makes the last real one a replay too.
        trimmed = list(events)
        while trimmed and trimmed[-1].event_type in (
            EventType.WORKFLOW_TASK_SCHEDULED,
            EventType.WORKFLOW_TASK_STARTED,
        ):
            trimmed.pop()
        if not any(e.event_type == EventType.WORKFLOW_TASK_COMPLETED for e in trimmed):
            return
        n = len(trimmed)
        t = trimmed[-1].event_time
        trimmed.append(
            HistoryEvent(
                n + 1,
                t,
                EventType.WORKFLOW_TASK_SCHEDULED,
                0,
                0,
                {"task_queue": "", "start_to_close_timeout_ms": 0, "attempt": 1},
            )
        )
        trimmed.append(
            HistoryEvent(
                n + 2,
                t,
                EventType.WORKFLOW_TASK_STARTED,
                0,
                0,
                {"scheduled_event_id": n + 1, "identity": "replayer", "request_id": ""},
            )
        )
        inst = WorkflowInstance(
            defn,
            namespace="replay",
            workflow_id=history.workflow_id,
            run_id=history.run_id or "replay",
            converter=self._converter,
        )
        inst.activate(trimmed)

    async def replay_workflows(
        self, histories: Sequence[WorkflowHistory | str | Path], *, raise_on_replay_failure: bool = True
    ) -> WorkflowReplayResults:
        """Replay each history in turn (see :meth:`replay_workflow`)."""
        results = WorkflowReplayResults()
        for h in histories:
            result = self.replay_workflow(h, raise_on_replay_failure=raise_on_replay_failure)
            if result.replay_failure is not None:
                results.replay_failures[result.history.run_id] = result.replay_failure
        return results
