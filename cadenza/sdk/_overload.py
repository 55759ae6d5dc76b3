"""How the SDK's transports and workers answer a server that is over a limit (RESOURCE_EXHAUSTED).

The server's overload limits (``cadenza.engine.ratelimit``) refuse a call *before doing anything*
and say when to try again: ``retry_after_ms`` in the error's details (and ``retry-after-ms`` in
gRPC trailing metadata). Only such a refusal is retried here; RESOURCE_EXHAUSTED without a hint
(a request over the size limit, too many signals in one run) is final, since trying again would
meet the same wall.

Which calls are retried (``RETRIED_ON_OVERLOAD``): the same ones that are safe to repeat after an
UNAVAILABLE whose outcome is unknown, plus update-with-start. Reads are idempotent; a start, a
signal and a cancel carry a request id the server deduplicates; an update carries its update id;
update-with-start carries both; terminating a run twice leaves it terminated. Reset is not retried:
it creates a run and has no request id, so repeating it is the caller's decision. Worker calls are
not retried here either: a poll's refusal goes back to the worker's poll loop, which backs off
(``PollBackoff``) instead of spinning, and a task's report is left to the task's timeout as on
UNAVAILABLE.

The wait before each retry is at least the server's hint, and grows with each refusal of the call
(exponential, from ``initial_backoff`` up to ``max_backoff``), with up to 50% jitter above it so
that clients refused together do not return together. The waits of one call add up to at most
``max_wait_s``; when the next one would not fit, the refusal is raised to the caller.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

RETRY_AFTER_KEY = "retry-after-ms"
"""The gRPC trailing metadata key of the hint (also ``retry_after_ms`` in the error's details)."""

RETRIED_ON_OVERLOAD = frozenset(
    {
        "StartWorkflowExecution",
        "StartWorkflowExecutionAndWait",
        "SignalWorkflowExecution",
        "RequestCancelWorkflowExecution",
        "TerminateWorkflowExecution",
        "UpdateWorkflowExecution",
        "UpdateWithStartWorkflowExecution",
        "QueryWorkflow",
        "DescribeWorkflowExecution",
        "GetWorkflowExecutionHistory",
        "DescribeNamespace",
        "ListNamespaces",
        "ListWorkflowExecutions",
        "ScanWorkflowExecutions",
        "CountWorkflowExecutions",
        "GetArchivedWorkflowHistory",
        "ListArchivedWorkflowExecutions",
        "GetSearchAttributes",
        "GetClusterInfo",
        "DescribeCluster",
        "ListClusterMembers",
        "DescribeTaskQueue",
    }
)
"""API methods retried after an overload refusal (see the module docstring for why these)."""


def python_name(method: str) -> str:
    """``StartWorkflowExecution`` -> ``start_workflow_execution`` (the transports' method names)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", method).lower()


RETRIED_ON_OVERLOAD_CALLS = frozenset(python_name(m) for m in RETRIED_ON_OVERLOAD)
"""``RETRIED_ON_OVERLOAD`` as the in-process transport's method names."""

DEFAULT_MAX_WAIT_S = 10.0
"""How long one call waits in total for an overloaded server before the refusal is raised."""


def retry_after_s(status: str, details: Mapping[str, Any]) -> float | None:
    """The server's hint, in seconds, when ``status``/``details`` are an overload refusal."""
    if status != "RESOURCE_EXHAUSTED":
        return None
    hint = details.get("retry_after_ms")
    if isinstance(hint, bool) or not isinstance(hint, int | float) or hint < 0:
        return None
    return float(hint) / 1000.0


class OverloadRetry:
    """The retries of one call refused for overload: ``next_wait`` says how long to wait before the
    next attempt, or None when the budget is spent (then the refusal is raised); ``wait`` waits it.
    ``rand`` and ``sleep`` are injected so tests run without time passing."""

    __slots__ = ("_initial", "_max", "_max_wait", "_rand", "_sleep", "attempts", "waited_s")

    def __init__(
        self,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
        *,
        initial_backoff: float = 0.05,
        max_backoff: float = 2.0,
        rand: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._max_wait = max_wait_s
        self._sleep = sleep
        self._initial = initial_backoff
        self._max = max_backoff
        self._rand = rand
        self.attempts = 0
        """Refusals so far."""
        self.waited_s = 0.0
        """Seconds waited so far."""

    def next_wait(self, hint_s: float) -> float | None:
        floor = min(self._initial * (2**self.attempts), self._max)
        base = max(hint_s, floor)
        left = self._max_wait - self.waited_s
        if base > left:
            return None
        wait = min(base * (1.0 + 0.5 * self._rand()), left)
        self.attempts += 1
        self.waited_s += wait
        return wait

    async def wait(self, status: str, details: Mapping[str, Any]) -> bool:
        """For an overload refusal (``status``, ``details``) within the budget: waits and returns
        True (try again). Otherwise returns False at once (raise the error)."""
        hint = retry_after_s(status, details)
        wait = self.next_wait(hint) if hint is not None else None
        if wait is None:
            return False
        await self._sleep(wait)
        return True


class PollBackoff:
    """A worker poll loop's pause after a failed poll. A refusal for overload waits the server's
    hint, growing with each consecutive refusal (to ``max_s``) and jittered, so a worker refused a
    poll slot does not ask again at once; any other failure waits ``other_s`` as before. A poll that
    succeeds (``reset``) starts over."""

    def __init__(
        self,
        *,
        other_s: float = 0.2,
        max_s: float = 30.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._other_s = other_s
        self._max_s = max_s
        self._rand = rand
        self._refusals = 0

    def reset(self) -> None:
        self._refusals = 0

    def pause_s(self, error: BaseException) -> float:
        status = getattr(error, "status", "")
        details = getattr(error, "details", None)
        hint = retry_after_s(status, details) if isinstance(details, Mapping) else None
        if hint is None:
            return self._other_s
        base = min(max(hint, self._other_s) * (2**self._refusals), self._max_s)
        self._refusals = min(self._refusals + 1, 16)
        return base * (1.0 + 0.5 * self._rand())
