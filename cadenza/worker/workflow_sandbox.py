"""temporalio's sandbox names, accepted so its code runs unchanged; none of them does anything.

Workflows here run without an import sandbox: determinism comes from the workflow event loop
(workflow time, seeded random, commands for every side effect) and from replay checking the
recorded commands. ``Worker(workflow_runner=...)`` takes these runners and ignores them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["SandboxRestrictions", "SandboxedWorkflowRunner", "UnsandboxedWorkflowRunner"]


class SandboxRestrictions:
    """Accepted and ignored. ``SandboxRestrictions.default.with_passthrough_modules(...)`` and the
    other ``with_*`` builders return a restrictions object, as temporalio's do."""

    default: SandboxRestrictions

    def __init__(self, **options: Any) -> None:
        self.options = dict(options)
        self.passthrough_modules: frozenset[str] = frozenset(options.get("passthrough_modules", ()))

    def with_passthrough_modules(self, *modules: str) -> SandboxRestrictions:
        return SandboxRestrictions(
            **{**self.options, "passthrough_modules": self.passthrough_modules | set(modules)}
        )

    def with_passthrough_all_modules(self) -> SandboxRestrictions:
        return SandboxRestrictions(**{**self.options, "passthrough_all_modules": True})

    def with_invalid_module_members(self, *_: Any, **__: Any) -> SandboxRestrictions:
        return self

    def with_invalid_modules(self, *_: Iterable[str]) -> SandboxRestrictions:
        return self


SandboxRestrictions.default = SandboxRestrictions()


class SandboxedWorkflowRunner:
    """Accepted and ignored (workflows run without a sandbox)."""

    def __init__(self, restrictions: SandboxRestrictions | None = None, **options: Any) -> None:
        self.restrictions = restrictions or SandboxRestrictions.default
        self.options = dict(options)


class UnsandboxedWorkflowRunner:
    """Accepted and ignored: what every worker does anyway."""
