"""Which run of a workflow id is current when runs arrive from several clusters (``current_run``)."""

from __future__ import annotations

import pytest

from cadenza.engine.persistence.protocols import CurrentExecution, ExecutionState, ExecutionStatus
from cadenza.replication.current_run import CreatePlan, decide_create


def current(state: ExecutionState, version: int, run_id: str = "cur") -> CurrentExecution:
    status = ExecutionStatus.RUNNING if state == ExecutionState.RUNNING else ExecutionStatus.COMPLETED
    return CurrentExecution(
        run_id=run_id, create_request_id="r", state=state, status=status, last_write_version=version
    )


@pytest.mark.parametrize(
    ("state", "current_version", "incoming_version", "plan"),
    [
        (ExecutionState.RUNNING, 12, 1, CreatePlan.ZOMBIE),
        (ExecutionState.COMPLETED, 12, 1, CreatePlan.ZOMBIE),
        (ExecutionState.RUNNING, 1, 12, CreatePlan.SUPPRESS_CURRENT),
        (ExecutionState.CREATED, 1, 12, CreatePlan.SUPPRESS_CURRENT),
        (ExecutionState.COMPLETED, 1, 12, CreatePlan.REPLACE_CLOSED),
        (ExecutionState.ZOMBIE, 1, 12, CreatePlan.REPLACE_CLOSED),
        (ExecutionState.COMPLETED, 2, 2, CreatePlan.REPLACE_CLOSED),
        (ExecutionState.RUNNING, 2, 2, CreatePlan.WAIT),
    ],
)
def test_the_higher_last_write_version_takes_the_pointer(
    state: ExecutionState, current_version: int, incoming_version: int, plan: CreatePlan
) -> None:
    decision = decide_create(current(state, current_version), "new", incoming_version)
    assert decision.plan is plan


def test_no_current_run_is_a_brand_new_run() -> None:
    assert decide_create(None, "new", 3).plan is CreatePlan.BRAND_NEW


def test_the_current_run_itself_is_not_a_create() -> None:
    with pytest.raises(ValueError, match="already current"):
        decide_create(current(ExecutionState.RUNNING, 1, run_id="same"), "same", 1)
