"""Deciding one call: the ``Authorizer`` protocol (Temporal's shape) and the default one.

The frontend asks the claim mapper who the caller is (``Claims``), then the authorizer whether
those claims allow the call (``CallTarget``: the API and its namespace). The default authorizer
reads ``API_ACCESS``; a deployment with its own rules supplies another ``Authorizer`` (config
``authorizer: package.module:factory``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from cadenza.engine.auth.api_access import API_ACCESS
from cadenza.engine.auth.claims import SYSTEM, Claims, Role
from cadenza.engine.errors import ServiceError


class UnauthenticatedError(ServiceError):
    """No credential, or one that does not verify (bad signature, expired, unknown key)."""

    code = "UNAUTHENTICATED"


class PermissionDeniedError(ServiceError):
    """A verified caller lacking the role a call needs; ``details`` name the API, the namespace
    (``system`` for cluster-wide calls) and the role."""

    code = "PERMISSION_DENIED"


@dataclass(frozen=True, slots=True)
class CallTarget:
    """The call being decided (Temporal's ``authorization.CallTarget``)."""

    api_name: str
    """The gRPC method name, e.g. ``StartWorkflowExecution``."""
    namespace: str = ""
    """The namespace the call acts in; empty for cluster-wide calls."""
    request: dict[str, Any] = field(default_factory=dict, compare=False)
    """The decoded request, for authorizers that look deeper (the default one does not)."""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""
    """Why a call is refused: sent to the caller and logged."""
    namespace: str = ""
    """The scope the refusal is about: a namespace, or ``system``."""
    role: Role = Role.NONE
    """The role that was missing."""


ALLOW = Decision(True)


class Authorizer(Protocol):
    async def authorize(self, claims: Claims | None, target: CallTarget) -> Decision:
        """Whether ``claims`` (None: an unauthenticated caller) may make the call ``target``."""
        ...


class NoopAuthorizer:
    """Allows everything (``authorizer: noop``): the server stays open."""

    async def authorize(self, claims: Claims | None, target: CallTarget) -> Decision:
        return ALLOW


class DefaultAuthorizer:
    """Allows a call when the caller holds the role ``API_ACCESS`` names for it, in the request's
    namespace or in the system scope. An API missing from the table is refused (fail closed)."""

    async def authorize(self, claims: Claims | None, target: CallTarget) -> Decision:
        return decide(claims, target)


def decide(claims: Claims | None, target: CallTarget) -> Decision:
    """The default rule, synchronous (the gRPC gate calls it directly when it is the authorizer)."""
    access = API_ACCESS.get(target.api_name)
    if access is None:
        return Decision(False, f"{target.api_name} has no entry in the access table", SYSTEM, Role.ADMIN)
    if claims is None:
        return Decision(False, f"{target.api_name} needs a verified caller", target.namespace, access.role)
    if access.scope == "authenticated":
        return ALLOW
    who = f"caller {claims.subject!r}" if claims.subject else "the caller"
    if access.scope == "system":
        if claims.system >= access.role:
            return ALLOW
        return Decision(
            False,
            f"{target.api_name} needs role {access.role.label} in the system scope "
            f"(permission {SYSTEM}:{access.role.label}); {who} has {claims.system.label}",
            SYSTEM,
            access.role,
        )
    held = claims.role_in(target.namespace)
    if held >= access.role:
        return ALLOW
    return Decision(
        False,
        f"{target.api_name} needs role {access.role.label} in namespace {target.namespace!r} "
        f"(permission {target.namespace}:{access.role.label}); {who} has {held.label}",
        target.namespace,
        access.role,
    )
