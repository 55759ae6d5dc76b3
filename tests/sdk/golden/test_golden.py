"""Every recorded history replays against the current workflow code.

The files were recorded by ``make_golden.py`` from the workflows of ``e2e_semantics/workflows.py``.
A change to the SDK's runtime, or to those workflows, that alters the commands a recorded history
replays to fails here: the histories of running workflows must keep replaying.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cadenza.exceptions import NondeterminismError
from cadenza.schemas.events import EventType
from cadenza.sdk.history import WorkflowHistory
from cadenza.worker import Replayer

from ..e2e_semantics import workflows as w

HERE = Path(__file__).resolve().parent

CURRENT_CODE: dict[str, list[type]] = {
    # Histories recorded before, with and after the patch all replay on the patched code.
    "shipping_old_path": [w.ShippingV2],
    "shipping_patched": [w.ShippingV2],
    "shipping_deprecated": [w.ShippingV3],
    "side_effects": [w.SideEffects],
    "local_activities": [w.LocalActivities],
    "cancel_caught": [w.CatchesCancel],
    "cancel_reraised": [w.ReraisesCancel],
    "cancel_branch": [w.CancelsOneBranch],
    "search_attributes": [w.Tagged],
    "session_files": [w.FileProcessing],
    "session_failed": [w.SessionSurvivor],
}
"""Golden file stem -> the workflow classes to replay it with."""


def test_every_golden_file_is_listed() -> None:
    assert sorted(p.stem for p in HERE.glob("*.json")) == sorted(CURRENT_CODE)


@pytest.mark.parametrize("name", sorted(CURRENT_CODE))
def test_golden_history_replays(name: str) -> None:
    history = WorkflowHistory.from_file(HERE / f"{name}.json")
    assert history.events[-1].event_type in (
        EventType.WORKFLOW_EXECUTION_COMPLETED,
        EventType.WORKFLOW_EXECUTION_CANCELED,
    )
    Replayer(workflows=CURRENT_CODE[name]).replay_workflow(history)


def test_the_deprecated_patch_also_replays_the_patched_history() -> None:
    Replayer(workflows=[w.ShippingV3]).replay_workflow(str(HERE / "shipping_patched.json"))


def test_a_golden_history_catches_an_incompatible_change() -> None:
    with pytest.raises(NondeterminismError):
        Replayer(workflows=[w.ShippingV1]).replay_workflow(str(HERE / "shipping_patched.json"))
