"""Commands produced by workflow code, and their matching against recorded history.

Each workflow task's commands are kept, in order, until the events they produced are seen after the
task's WorkflowTaskCompleted. Seeing a command event pops the oldest outstanding command and checks
that it is the same command (type and key). This is the whole of replay checking: the same code
path runs for a cached instance (its commands were returned by the previous activation) and for a
replay from event 1.

Two hooks refine matching for commands whose identity is inside payloads: ``marker_keys`` maps a
marker name to a function giving the marker's key from its attributes (a patch id, a sequence
number), and ``skippable`` says which history events may stand without a command (a deprecated
patch marker, once the code no longer calls ``deprecate_patch``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from cadenza.schemas.events import COMMAND_EVENT, Command, CommandType, EventType, HistoryEvent
from cadenza.sdk.exceptions import NondeterminismError

__all__ = ["COMMAND_EVENT_TYPES", "CommandQueue", "CommandRecord"]

COMMAND_EVENT_TYPES: frozenset[EventType] = frozenset(COMMAND_EVENT.values())

# The attributes that identify a command and appear, with the same names, on its event.
_KEY_FIELDS: dict[CommandType, tuple[str, ...]] = {
    CommandType.SCHEDULE_ACTIVITY_TASK: ("activity_type", "activity_id"),
    CommandType.REQUEST_CANCEL_ACTIVITY_TASK: ("scheduled_event_id",),
    CommandType.START_TIMER: ("timer_id",),
    CommandType.CANCEL_TIMER: ("timer_id",),
    CommandType.RECORD_MARKER: ("marker_name",),
    CommandType.START_CHILD_WORKFLOW_EXECUTION: ("workflow_type", "workflow_id"),
    CommandType.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION: ("signal_name",),
    CommandType.CONTINUE_AS_NEW_WORKFLOW_EXECUTION: ("workflow_type",),
    CommandType.ACCEPT_WORKFLOW_UPDATE: ("update_id", "name"),
    CommandType.COMPLETE_WORKFLOW_UPDATE: ("update_id",),
}
_EVENT_COMMAND: dict[EventType, CommandType] = {event: command for command, event in COMMAND_EVENT.items()}


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


MarkerKey = Callable[[dict[str, Any]], str]
"""The identity of a marker beyond its name, from its attributes (e.g. ``"patch_id='v2'"``)."""


def _key_text(
    command_type: CommandType | None, attributes: dict[str, Any], marker_keys: dict[str, MarkerKey]
) -> str:
    fields = _KEY_FIELDS.get(command_type, ()) if command_type is not None else ()
    parts = [f"{f}={attributes.get(f)!r}" for f in fields]
    if command_type is CommandType.RECORD_MARKER:
        key_fn = marker_keys.get(attributes.get("marker_name", ""))
        if key_fn is not None:
            parts.append(key_fn(attributes))
    return ", ".join(parts)


def describe_command(command: Command, marker_keys: dict[str, MarkerKey] | None = None) -> str:
    """``ScheduleActivityTask(activity_type='greet', activity_id='1')``: type and key."""
    key = _key_text(command.command_type, command.attributes, marker_keys or {})
    return f"{_pascal(command.command_type.name)}({key})"


def describe_event(event: HistoryEvent, marker_keys: dict[str, MarkerKey] | None = None) -> str:
    """``ActivityTaskScheduled(activity_type='greet', activity_id='1')``: type and key."""
    key = _key_text(_EVENT_COMMAND.get(event.event_type), event.attributes, marker_keys or {})
    return f"{event.event_type.pascal_name}({key})"


class CommandRecord:
    """A command plus what to do once its event id is known."""

    __slots__ = ("command", "on_recorded", "removed", "sent")

    def __init__(self, command: Command, on_recorded: Callable[[HistoryEvent], None] | None) -> None:
        self.command = command
        self.on_recorded = on_recorded
        """Called with the command's event when history shows it (e.g. to learn a scheduled event id)."""
        self.removed = False
        """Withdrawn before the task finished (e.g. a timer started and cancelled in one task)."""
        self.sent = False
        """The task that produced it has finished: it is (or will be) in history."""


class CommandQueue:
    """The commands of the task being run, and those of finished tasks not yet seen in history."""

    def __init__(self) -> None:
        self.current: list[CommandRecord] = []
        self._outstanding: deque[CommandRecord] = deque()
        self.marker_keys: dict[str, MarkerKey] = {}
        """Per marker name: the key compared (with the name) when matching a marker on replay."""
        self.skippable: Callable[[HistoryEvent], bool] | None = None
        """Events history may hold without a matching command; matching passes over them."""

    def add(
        self, command: Command, on_recorded: Callable[[HistoryEvent], None] | None = None
    ) -> CommandRecord:
        """Append a command to the current task."""
        record = CommandRecord(command, on_recorded)
        self.current.append(record)
        return record

    def finish_task(self, terminal: Command | None) -> list[Command]:
        """Close the current task; returns its commands (the terminal one last)."""
        if terminal is not None:
            self.current.append(CommandRecord(terminal, None))
        commands: list[Command] = []
        outstanding = self._outstanding
        for record in self.current:
            if record.removed:
                continue
            record.sent = True
            outstanding.append(record)
            commands.append(record.command)
        self.current = []
        return commands

    def has_outstanding(self) -> bool:
        """True when some sent command has not been seen in history yet."""
        return bool(self._outstanding)

    def check_all_recorded(self, event_id: int) -> None:
        """Raise if a finished task produced a command that history does not have.

        Called at the start of the next task (``event_id`` is its WorkflowTaskStarted) and at the end
        of a closed history.
        """
        if self._outstanding:
            record = self._outstanding[0]
            expected = describe_command(record.command, self.marker_keys)
            raise NondeterminismError(
                f"Nondeterminism before event {event_id}: workflow code produced {expected}, "
                f"but history recorded no such command",
                expected=expected,
                recorded=None,
                event_id=event_id,
            )

    def match(self, event: HistoryEvent) -> None:
        """Pair a command event from history with the oldest outstanding command."""
        recorded = describe_event(event, self.marker_keys)
        if not self._outstanding or not self._same(self._outstanding[0].command, event):
            if self.skippable is not None and self.skippable(event):
                return
        if not self._outstanding:
            raise NondeterminismError(
                f"Nondeterminism at event {event.event_id}: history recorded {recorded}, "
                f"but workflow code produced no command for it",
                expected=None,
                recorded=recorded,
                event_id=event.event_id,
            )
        record = self._outstanding.popleft()
        command = record.command
        if not self._same(command, event):
            expected = describe_command(command, self.marker_keys)
            raise NondeterminismError(
                f"Nondeterminism at event {event.event_id}: workflow code produced {expected}, "
                f"but history recorded {recorded}",
                expected=expected,
                recorded=recorded,
                event_id=event.event_id,
            )
        if record.on_recorded is not None:
            # Called once; dropped so the record and what the callback holds (an activity's state,
            # which holds the record) do not form a cycle only the full collector frees.
            on_recorded, record.on_recorded = record.on_recorded, None
            on_recorded(event)

    def _same(self, command: Command, event: HistoryEvent) -> bool:
        command_type = command.command_type
        if COMMAND_EVENT.get(command_type) is not event.event_type:
            return False
        command_attrs = command.attributes
        event_attrs: dict[str, Any] = event.attributes
        for field in _KEY_FIELDS.get(command_type, ()):
            if command_attrs.get(field) != event_attrs.get(field):
                return False
        if command_type is CommandType.RECORD_MARKER:
            key_fn = self.marker_keys.get(command_attrs.get("marker_name", ""))
            if key_fn is not None and key_fn(command_attrs) != key_fn(event_attrs):
                return False
        return True
