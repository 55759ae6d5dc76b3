"""Smaller parts of the workflow API temporalio's code uses: ``workflow.wait``, the run's memo, the
failure or result its previous run left (retries, cron), its payload converter, and the policy for
handlers still running when the run ends."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

from cadenza.sdk._runtime.instance import current_instance
from cadenza.sdk.converter import DataConverter

__all__ = [
    "HandlerUnfinishedPolicy",
    "get_last_completion_result",
    "get_last_failure",
    "has_last_completion_result",
    "memo",
    "memo_value",
    "payload_converter",
    "wait",
]

T = TypeVar("T")

_MISSING: Any = object()

FIRST_COMPLETED = asyncio.FIRST_COMPLETED
FIRST_EXCEPTION = asyncio.FIRST_EXCEPTION
ALL_COMPLETED = asyncio.ALL_COMPLETED


class HandlerUnfinishedPolicy(enum.Enum):
    """What to do about a signal or update handler still running when the run ends (temporalio's
    names). Accepted on ``@workflow.signal`` / ``@workflow.update``; the run ends either way
    (wait for ``workflow.all_handlers_finished`` to let them finish)."""

    WARN_AND_ABANDON = 1
    ABANDON = 2


async def wait(
    fs: Iterable[Awaitable[T]],
    *,
    timeout: float | None = None,
    return_when: str = ALL_COMPLETED,
) -> tuple[list[asyncio.Future[T]], list[asyncio.Future[T]]]:
    """``asyncio.wait`` for workflow code: the done and pending futures come back as lists in the
    order they were given (a set's order could differ on replay, and so would the code's path).
    Coroutines are wrapped in tasks, in order."""
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[T]] = [asyncio.ensure_future(f, loop=loop) for f in fs]
    if not futures:
        raise ValueError("workflow.wait() needs at least one awaitable")
    done, _ = await asyncio.wait(futures, timeout=timeout, return_when=return_when)
    return [f for f in futures if f in done], [f for f in futures if f not in done]


def memo() -> dict[str, Any]:
    """The run's memo, decoded (temporalio's ``workflow.memo()``)."""
    return dict(current_instance("workflow.memo()").info.memo)


def memo_value(key: str, default: Any = _MISSING, *, type_hint: Any = None) -> Any:
    """One memo value; ``KeyError`` if absent and no ``default`` is given. ``type_hint`` decodes the
    stored payload into that type (a dataclass, a Pydantic model, ...)."""
    instance = current_instance("workflow.memo_value()")
    raw = instance.info.memo
    if key not in raw:
        if default is _MISSING:
            raise KeyError(f"memo has no key {key!r}")
        return default
    value = raw[key]
    if type_hint is None:
        return value
    return instance.converter.from_payload(instance.converter.to_payload(value), type_hint)


def payload_converter() -> DataConverter:
    """The converter this run's payloads go through (``to_payloads`` / ``from_payloads``)."""
    return current_instance("workflow.payload_converter()").converter


def get_last_failure() -> BaseException | None:
    """The failure the previous run of this workflow ended with, when this run is its retry (or the
    next run of a cron schedule after a failure); None otherwise."""
    instance = current_instance("workflow.get_last_failure()")
    failure = instance.started_attributes.get("continued_failure")
    return instance.converter.failure_to_exception(failure) if failure else None


def has_last_completion_result() -> bool:
    """True when the previous run of a cron schedule completed with a result."""
    return bool(
        current_instance("workflow.has_last_completion_result()").started_attributes.get(
            "last_completion_result"
        )
    )


def get_last_completion_result(type_hint: Any = None) -> Any:
    """The result the previous run of a cron schedule completed with (None if there is none)."""
    instance = current_instance("workflow.get_last_completion_result()")
    payloads = instance.started_attributes.get("last_completion_result")
    if not payloads:
        return None
    values = instance.converter.from_payloads(payloads, [type_hint] if type_hint is not None else None)
    return values[0] if values else None
