"""Value types shared by workflows, activities and clients."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from cadenza.sdk.converter import RawValue
from cadenza.sdk.search_attributes import (
    SearchAttributeIndexedValueType,
    SearchAttributeKey,
    SearchAttributePair,
    SearchAttributeUpdate,
    TypedSearchAttributes,
)

__all__ = [
    "QueryRejectCondition",
    "RawValue",
    "RetryPolicy",
    "SearchAttributeIndexedValueType",
    "SearchAttributeKey",
    "SearchAttributePair",
    "SearchAttributeUpdate",
    "TypedSearchAttributes",
    "WorkflowIDConflictPolicy",
    "WorkflowIDReusePolicy",
    "ms_to_timedelta",
    "timedelta_to_ms",
]


def timedelta_to_ms(value: timedelta | float | None, field_name: str, *, round_up: bool = False) -> int:
    """Convert a duration (timedelta or seconds) to whole milliseconds for an ``*_ms`` field.

    ``None`` becomes 0 ("not set"). Negative values raise ``ValueError`` naming the field, because a
    negative duration always means a caller's mistake and the engine would silently treat it as unset.
    ``round_up`` is for timers: a sleep must never end earlier than asked.
    """
    if value is None:
        return 0
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(
            f"{field_name} must be a timedelta or a number of seconds, got {type(value).__name__}"
        )
    if seconds < 0 or math.isnan(seconds):
        raise ValueError(f"{field_name} must not be negative, got {seconds:g} s")
    ms = seconds * 1000.0
    return math.ceil(ms - 1e-9) if round_up else int(ms)


def ms_to_timedelta(value: int | None) -> timedelta | None:
    """Inverse of :func:`timedelta_to_ms`: 0 and None mean "not set"."""
    if not value:
        return None
    return timedelta(milliseconds=value)


@dataclass(frozen=True)
class RetryPolicy:
    """How an activity (or workflow) is retried after a failure."""

    initial_interval: timedelta = timedelta(seconds=1)
    """Delay before the first retry."""
    backoff_coefficient: float = 2.0
    """Each retry waits this many times longer than the previous one (at least 1.0)."""
    maximum_interval: timedelta | None = None
    """Cap on the delay between retries; None means 100 times ``initial_interval``."""
    maximum_attempts: int = 0
    """Total attempts including the first; 0 means unlimited."""
    non_retryable_error_types: Sequence[str] = field(default_factory=tuple)
    """Application error types that stop retrying."""

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not isinstance(self.initial_interval, timedelta):
            problems.append(f"initial_interval must be a timedelta, got {self.initial_interval!r}")
        elif self.initial_interval <= timedelta(0):
            problems.append(f"initial_interval must be positive, got {self.initial_interval!r}")
        if not isinstance(self.backoff_coefficient, int | float) or self.backoff_coefficient < 1.0:
            problems.append(f"backoff_coefficient must be at least 1.0, got {self.backoff_coefficient!r}")
        if self.maximum_interval is not None:
            if not isinstance(self.maximum_interval, timedelta):
                problems.append(f"maximum_interval must be a timedelta, got {self.maximum_interval!r}")
            elif self.maximum_interval <= timedelta(0):
                problems.append(f"maximum_interval must be positive, got {self.maximum_interval!r}")
            elif (
                isinstance(self.initial_interval, timedelta) and self.maximum_interval < self.initial_interval
            ):
                problems.append(
                    f"maximum_interval must not be less than initial_interval, got {self.maximum_interval!r}"
                    f" < {self.initial_interval!r}"
                )
        if (
            not isinstance(self.maximum_attempts, int)
            or isinstance(self.maximum_attempts, bool)
            or self.maximum_attempts < 0
        ):
            problems.append(f"maximum_attempts must be an int >= 0, got {self.maximum_attempts!r}")
        if isinstance(self.non_retryable_error_types, str):
            # A bare string would silently become a tuple of one-letter types.
            problems.append(
                "non_retryable_error_types must be a sequence of strings, "
                f"got {self.non_retryable_error_types!r}"
            )
        else:
            object.__setattr__(self, "non_retryable_error_types", tuple(self.non_retryable_error_types))
        if problems:
            raise ValueError("Invalid RetryPolicy: " + "; ".join(problems))

    @property
    def effective_maximum_interval(self) -> timedelta:
        """The cap actually applied: ``maximum_interval`` or 100 times ``initial_interval``."""
        return self.maximum_interval if self.maximum_interval is not None else self.initial_interval * 100

    def to_dict(self) -> dict[str, Any]:
        """The retry-policy dict of ``cadenza.schemas.events``.

        ``maximum_interval_ms`` is written explicitly (never 0) so the engine does not have to know
        the default.
        """
        return {
            "initial_interval_ms": timedelta_to_ms(self.initial_interval, "initial_interval"),
            "backoff_coefficient": float(self.backoff_coefficient),
            "maximum_interval_ms": timedelta_to_ms(self.effective_maximum_interval, "maximum_interval"),
            "maximum_attempts": self.maximum_attempts,
            "non_retryable_error_types": list(self.non_retryable_error_types),
        }

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> RetryPolicy:
        """Build from the retry-policy dict; 0 durations take the defaults."""
        initial = ms_to_timedelta(value.get("initial_interval_ms")) or timedelta(seconds=1)
        return cls(
            initial_interval=initial,
            backoff_coefficient=float(value.get("backoff_coefficient") or 2.0),
            maximum_interval=ms_to_timedelta(value.get("maximum_interval_ms")),
            maximum_attempts=int(value.get("maximum_attempts") or 0),
            non_retryable_error_types=tuple(value.get("non_retryable_error_types") or ()),
        )


class WorkflowIDReusePolicy(enum.StrEnum):
    """Whether a new run may start with the workflow id of a closed (or running) one.

    The values are the strings stored in ``workflow_id_reuse_policy`` fields.
    """

    ALLOW_DUPLICATE = "ALLOW_DUPLICATE"
    """Start a new run whatever the previous run's outcome."""
    ALLOW_DUPLICATE_FAILED_ONLY = "ALLOW_DUPLICATE_FAILED_ONLY"
    """Start a new run only if the previous one failed, was cancelled, terminated or timed out."""
    REJECT_DUPLICATE = "REJECT_DUPLICATE"
    """Never reuse the id."""
    TERMINATE_IF_RUNNING = "TERMINATE_IF_RUNNING"
    """Terminate a running run with this id and start a new one."""


class WorkflowIDConflictPolicy(enum.IntEnum):
    """What a start does when a run with its workflow id is *running* (temporalio's names and
    values); ``WorkflowIDReusePolicy`` decides about closed runs."""

    UNSPECIFIED = 0
    """FAIL for a start; USE_EXISTING for update-with-start."""
    FAIL = 1
    """Raise ``WorkflowAlreadyStartedError``."""
    USE_EXISTING = 2
    """Start nothing: the handle is the running run's (its run id)."""
    TERMINATE_EXISTING = 3
    """Terminate the running run and start the new one, in one write on the server."""

    @property
    def wire_name(self) -> str:
        """The policy as the start request carries it (empty: unspecified)."""
        return "" if self is WorkflowIDConflictPolicy.UNSPECIFIED else self.name


class QueryRejectCondition(enum.StrEnum):
    """When a client refuses to send a query, by the run's status (checked by describing it first).

    A refused query raises ``QueryRejectedError`` naming the status, so a caller can tell "the run is
    gone" from "the query failed".
    """

    NONE = "NONE"
    """Query whatever the status (a closed run is replayed to answer)."""
    NOT_OPEN = "NOT_OPEN"
    """Refuse unless the run is RUNNING."""
    NOT_COMPLETED_CLEANLY = "NOT_COMPLETED_CLEANLY"
    """Refuse if the run closed other than COMPLETED (failed, cancelled, terminated, timed out or
    continued as new)."""

    def rejects(self, status: str) -> bool:
        """True when a run in ``status`` (``RUNNING``, ``COMPLETED``, ...) must not be queried."""
        status = status.upper()
        if self is QueryRejectCondition.NOT_OPEN:
            return status != "RUNNING"
        if self is QueryRejectCondition.NOT_COMPLETED_CLEANLY:
            return status not in ("RUNNING", "COMPLETED")
        return False


class _ArgUnset:
    def __repr__(self) -> str:
        return "ARG_UNSET"


ARG_UNSET: Any = _ArgUnset()
"""The default of ``arg=``: no single argument given that way."""


def positional_args(
    args: Sequence[Any], keyword_args: Sequence[Any] | None, what: str, arg: Any = ARG_UNSET
) -> tuple[Any, ...]:
    """The arguments of a call that takes them as ``*args``, as ``args=[...]`` or as one ``arg=``
    (temporalio's spellings: its calls take one positional ``arg`` or ``args``); more than one
    way at once is a ``TypeError`` naming ``what``."""
    if arg is not ARG_UNSET:
        if args or keyword_args is not None:
            raise TypeError(f"{what}: pass arguments one way: positionally, as arg=, or as args=[...]")
        return (arg,)
    if keyword_args is None:
        return tuple(args)
    if args:
        raise TypeError(f"{what}: pass arguments either positionally or as args=[...], not both")
    if isinstance(keyword_args, str | bytes) or not isinstance(keyword_args, Sequence):
        raise TypeError(f"{what}: args must be a list of arguments, got {type(keyword_args).__name__}")
    return tuple(keyword_args)
