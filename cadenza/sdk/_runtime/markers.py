"""Markers: what workflow code records in history so replay can take the same decisions.

Three kinds, named as temporalio's core names them:

- ``core_patch``: a version marker. ``patched(id)`` records it when new code runs for the first time;
  on replay, the marker's presence in the task's recorded commands says which path the code took.
- ``core_side_effect``: the result of ``side_effect(fn)``; replay reads it instead of calling ``fn``.
- ``core_local_activity``: the outcome of a local activity (see ``local_activities.py``).

A marker is recorded by the workflow task whose code asked for it, so on replay the instance looks
ahead at the command events of the task being replayed (:class:`TaskMarkers`) before running the
code: that is how ``patched`` knows the answer at the moment it is called.

Details are a map of payload lists. The identifying details (patch id, sequence number, activity
type) are compared decoded, never as bytes, so a payload codec that encrypts with a fresh nonce does
not break replay.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from cadenza.schemas.events import Command, CommandType, EventType, HistoryEvent
from cadenza.sdk.converter import DataConverter
from cadenza.sdk.exceptions import NondeterminismError

if TYPE_CHECKING:
    from cadenza.sdk._runtime.instance import WorkflowInstance

ReturnT = TypeVar("ReturnT")

__all__ = [
    "LOCAL_ACTIVITY_MARKER",
    "PATCH_MARKER",
    "SIDE_EFFECT_MARKER",
    "Patches",
    "SideEffects",
    "TaskMarkers",
    "deprecate_patch",
    "detail",
    "install_marker_keys",
    "marker_command",
    "patched",
    "side_effect",
]

PATCH_MARKER = "core_patch"
SIDE_EFFECT_MARKER = "core_side_effect"
LOCAL_ACTIVITY_MARKER = "core_local_activity"

_WFT_BOUNDARY = frozenset({EventType.WORKFLOW_TASK_SCHEDULED, EventType.WORKFLOW_TASK_STARTED})


def detail(converter: DataConverter, attributes: dict[str, Any], name: str, hint: Any = None) -> Any:
    """The decoded first value of detail ``name`` (None when absent)."""
    payloads = (attributes.get("details") or {}).get(name)
    if not payloads:
        return None
    return converter.from_payloads(payloads, [hint] if hint is not None else None)[0]


def marker_command(
    converter: DataConverter,
    name: str,
    details: dict[str, Any],
    *,
    raw: dict[str, list[dict[str, Any]]] | None = None,
    failure: dict[str, Any] | None = None,
) -> Command:
    """A RECORD_MARKER command; ``details`` values are encoded one payload each, ``raw`` ones as is."""
    encoded = {key: converter.to_payloads([value]) for key, value in details.items()}
    encoded.update(raw or {})
    return Command(
        CommandType.RECORD_MARKER,
        {"marker_name": name, "details": encoded, "header": {}, "failure": failure},
    )


def install_marker_keys(instance: WorkflowInstance) -> None:
    """Teach the instance's command queue how markers of each kind are identified and skipped."""
    converter = instance.converter

    def key(*names: str) -> Any:
        def marker_key(attributes: dict[str, Any]) -> str:
            parts = []
            for name in names:
                try:
                    value = detail(converter, attributes, name)
                except Exception:
                    value = "<undecodable>"
                parts.append(f"{name}={value!r}")
            return ", ".join(parts)

        return marker_key

    queue = instance.commands
    queue.marker_keys[PATCH_MARKER] = key("patch_id")
    queue.marker_keys[SIDE_EFFECT_MARKER] = key("seq")
    queue.marker_keys[LOCAL_ACTIVITY_MARKER] = key("seq", "activity_type")

    def skippable(event: HistoryEvent) -> bool:
        # As in temporalio: once every run that took the old path is gone, the code drops its
        # deprecate_patch call, and the deprecated markers still in history must not fail replay.
        attributes = event.attributes
        if event.event_type is not EventType.MARKER_RECORDED or attributes.get("marker_name") != PATCH_MARKER:
            return False
        try:
            return bool(detail(converter, attributes, "deprecated"))
        except Exception:
            return False

    queue.skippable = skippable


class TaskMarkers:
    """The markers recorded by the workflow task being replayed, by name and key."""

    def __init__(self, instance: WorkflowInstance) -> None:
        self._instance = instance
        self._by_key: dict[tuple[str, str], HistoryEvent] = {}
        self.completed_event_id = 0
        """The WorkflowTaskCompleted of the task being replayed (0 when not replaying)."""

    def look_ahead(self, events: Sequence[HistoryEvent], completed_index: int) -> None:
        """Index the markers recorded with the WorkflowTaskCompleted at ``events[completed_index]``."""
        self._by_key.clear()
        completed = events[completed_index]
        self.completed_event_id = completed.event_id
        keys = self._instance.commands.marker_keys
        for event in events[completed_index + 1 :]:
            if event.event_type in _WFT_BOUNDARY:
                break
            if event.event_type is not EventType.MARKER_RECORDED:
                continue
            attributes = event.attributes
            if attributes.get("workflow_task_completed_event_id", completed.event_id) != completed.event_id:
                continue
            name = attributes.get("marker_name", "")
            key_fn = keys.get(name)
            self._by_key.setdefault((name, key_fn(attributes) if key_fn else ""), event)

    def clear(self) -> None:
        """A new (not replayed) task: nothing is recorded yet."""
        self._by_key.clear()
        self.completed_event_id = 0

    def find(self, name: str, attributes: dict[str, Any]) -> HistoryEvent | None:
        """The recorded marker with the same name and key as a marker command's ``attributes``."""
        key_fn = self._instance.commands.marker_keys.get(name)
        return self._by_key.get((name, key_fn(attributes) if key_fn else ""))

    def missing(self, what: str) -> NondeterminismError:
        """The error for code asking, on replay, for a marker its task did not record."""
        event_id = self.completed_event_id
        error = NondeterminismError(
            f"Nondeterminism in the workflow task completed at event {event_id}: workflow code "
            f"asked for {what}, but history recorded no such marker in that task",
            expected=what,
            recorded=None,
            event_id=event_id,
        )
        # Recorded on the instance too: workflow code catching the exception must not hide it.
        self._instance.report_nondeterminism(error)
        return error


class Patches:
    """``patched`` / ``deprecate_patch``: one memoized decision per patch id and run."""

    def __init__(self, instance: WorkflowInstance) -> None:
        self._instance = instance
        self._decided: dict[str, bool] = {}

    def patched(self, patch_id: str, *, deprecated: bool) -> bool:
        """True when the code should take the new path (and the marker is, or will be, recorded)."""
        if not isinstance(patch_id, str) or not patch_id:
            raise ValueError(f"patch_id must be a non-empty string, got {patch_id!r}")
        decided = self._decided.get(patch_id)
        if decided is not None:
            return decided
        instance = self._instance
        instance.check_can_command("call patched() or deprecate_patch()")
        converter = instance.converter
        command = marker_command(converter, PATCH_MARKER, {"patch_id": patch_id, "deprecated": deprecated})
        if instance.is_replaying:
            # The new path was taken exactly when the task recorded the marker. A deprecated patch
            # always takes the new path; its marker is matched only if history has it.
            recorded = instance.task_markers.find(PATCH_MARKER, command.attributes) is not None
            use_new = recorded or deprecated
            if recorded:
                instance.commands.add(command)
        else:
            use_new = True
            instance.commands.add(command)
        self._decided[patch_id] = use_new
        return use_new


class SideEffects:
    """``side_effect(fn)``: call once, record the result, read it back on every replay."""

    def __init__(self, instance: WorkflowInstance) -> None:
        self._instance = instance
        self._seq = 0

    def run(self, fn: Any, result_type: Any) -> Any:
        """The value of ``fn()`` as first recorded (decoded with ``result_type``)."""
        instance = self._instance
        instance.check_can_command("run a side effect")
        converter = instance.converter
        self._seq += 1
        seq = self._seq
        if instance.is_replaying:
            probe = marker_command(converter, SIDE_EFFECT_MARKER, {"seq": seq})
            event = instance.task_markers.find(SIDE_EFFECT_MARKER, probe.attributes)
            if event is None:
                raise instance.task_markers.missing(f"side effect #{seq}")
            attributes = event.attributes
            command = Command(
                CommandType.RECORD_MARKER,
                {
                    "marker_name": SIDE_EFFECT_MARKER,
                    "details": attributes.get("details") or {},
                    "header": attributes.get("header") or {},
                    "failure": None,
                },
            )
        else:
            value = fn()
            if hasattr(value, "__await__"):
                close = getattr(value, "close", None)
                if close is not None:
                    close()
                raise TypeError("side_effect needs a plain (non-async) function")
            command = marker_command(
                converter,
                SIDE_EFFECT_MARKER,
                {"seq": seq},
                raw={"result": converter.to_payloads([value])},
            )
        instance.commands.add(command)
        # Always decode what is recorded, so the first run and replays see values of the same type.
        return detail(converter, command.attributes, "result", result_type)


def _instance(what: str) -> WorkflowInstance:
    # Imported here: the instance module imports this one.
    from cadenza.sdk._runtime.instance import current_instance

    return current_instance(what)


# -- what workflow code calls (re-exported by ``cadenza.sdk.workflow``) -----------------------------


def patched(patch_id: str) -> bool:
    """Whether to take the new code path of change ``patch_id``.

    A run executing this code for the first time takes it (True) and records a version marker;
    replaying a history recorded before the change, which has no marker, returns False, so the old
    path replays as it ran. The answer is fixed for the rest of the run. Once no run that took the
    old path remains, replace the call with :func:`deprecate_patch`, and later remove that too.
    """
    return _instance("workflow.patched()").patches.patched(patch_id, deprecated=False)


def deprecate_patch(patch_id: str) -> None:
    """Mark change ``patch_id`` as the only path: records the marker, and replays histories with or
    without it (those recorded by :func:`patched` or before the call was removed)."""
    _instance("workflow.deprecate_patch()").patches.patched(patch_id, deprecated=True)


def side_effect(fn: Callable[[], ReturnT], *, result_type: Any = None) -> ReturnT:
    """Call ``fn`` once and record its result; on replay return the recorded result without calling it.

    For short, non-failing, local nondeterminism (a random id from ``secrets``, reading a config
    value). ``fn`` must be a plain function; the value must be encodable by the data converter and
    comes back decoded (as ``result_type``, default: the JSON shape) on every run alike.
    """
    return _instance("workflow.side_effect()").side_effects.run(  # type: ignore[no-any-return]
        fn, result_type
    )
