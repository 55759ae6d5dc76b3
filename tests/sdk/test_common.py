"""RetryPolicy and duration helpers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cadenza.sdk.common import RetryPolicy, WorkflowIDReusePolicy, timedelta_to_ms


def test_defaults_and_dict_shape() -> None:
    assert RetryPolicy().to_dict() == {
        "initial_interval_ms": 1000,
        "backoff_coefficient": 2.0,
        "maximum_interval_ms": 100_000,
        "maximum_attempts": 0,
        "non_retryable_error_types": [],
    }


def test_round_trip() -> None:
    policy = RetryPolicy(
        initial_interval=timedelta(milliseconds=250),
        backoff_coefficient=1.5,
        maximum_interval=timedelta(seconds=10),
        maximum_attempts=5,
        non_retryable_error_types=["Bad"],
    )
    assert RetryPolicy.from_dict(policy.to_dict()) == policy
    assert policy.non_retryable_error_types == ("Bad",)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"initial_interval": timedelta(seconds=-1)},
            "initial_interval must be positive, got datetime.timedelta(days=-1",
        ),
        ({"backoff_coefficient": 0.5}, "backoff_coefficient must be at least 1.0, got 0.5"),
        ({"maximum_attempts": -2}, "maximum_attempts must be an int >= 0, got -2"),
        (
            {"maximum_interval": timedelta(milliseconds=1)},
            "maximum_interval must not be less than initial_interval",
        ),
        ({"non_retryable_error_types": "Bad"}, "non_retryable_error_types must be a sequence of strings"),
    ],
)
def test_validation_names_field_and_value(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match="Invalid RetryPolicy") as info:
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_all_problems_reported_at_once() -> None:
    with pytest.raises(ValueError) as info:
        RetryPolicy(backoff_coefficient=0, maximum_attempts=-1)
    assert "backoff_coefficient" in str(info.value) and "maximum_attempts" in str(info.value)


def test_timedelta_to_ms() -> None:
    assert timedelta_to_ms(None, "x") == 0
    assert timedelta_to_ms(timedelta(seconds=1.5), "x") == 1500
    assert timedelta_to_ms(2, "x") == 2000
    assert timedelta_to_ms(0.0001, "x", round_up=True) == 1
    with pytest.raises(ValueError, match="heartbeat_timeout must not be negative, got -3"):
        timedelta_to_ms(-3, "heartbeat_timeout")


def test_reuse_policy_values_are_their_names() -> None:
    assert [p.value for p in WorkflowIDReusePolicy] == [p.name for p in WorkflowIDReusePolicy]
