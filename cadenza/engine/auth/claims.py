"""Who a caller is and what it may do: roles, claims, and the permission strings that grant them.

A permission is ``<namespace>:<role>`` (``video:write``) or ``system:<role>`` (``system:admin``)
for cluster-wide operations, as Temporal's default claim mapper reads them (Temporal names its
system namespace ``temporal-system``; here it is ``system``, so no namespace can be called that in
a permission). Roles are ordered; holding one grants every role below it:

    read < worker < write < admin

``worker`` is Temporal's: what a worker process needs (poll and answer tasks, heartbeat, plus
everything ``read`` allows) without being able to start, signal or terminate workflows on its own.
A system role holds in every namespace too (``system:read`` reads everything).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

SYSTEM = "system"
"""The name a permission uses for the cluster scope (``system:admin``)."""


class Role(enum.IntEnum):
    """A caller's role in one namespace or in the system scope; higher includes lower."""

    NONE = 0
    READ = 1
    WORKER = 2
    WRITE = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role | None:
        """The role named ``text`` (any case; ``reader``/``writer`` as Temporal's roles are also
        spelled), or None."""
        key = text.strip().lower()
        return _ROLE_NAMES.get(key)


_ROLE_NAMES = {
    "read": Role.READ,
    "reader": Role.READ,
    "worker": Role.WORKER,
    "write": Role.WRITE,
    "writer": Role.WRITE,
    "admin": Role.ADMIN,
}


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified caller may do (Temporal's ``authorization.Claims``)."""

    subject: str = ""
    """Who the caller is (the token's ``sub``, or the certificate's common name): for logs."""
    system: Role = Role.NONE
    """The caller's role in the system scope, which also holds in every namespace."""
    namespaces: Mapping[str, Role] = field(default_factory=dict)
    """The caller's role per namespace name."""
    expires_at_us: int | None = None
    """When the credential stops being valid (a token's ``exp``), microseconds since the epoch."""

    def role_in(self, namespace: str) -> Role:
        return max(self.system, self.namespaces.get(namespace, Role.NONE))

    def merged(self, other: Claims) -> Claims:
        """The union of two credentials' grants (a token and a client certificate)."""
        namespaces = dict(self.namespaces)
        for name, role in other.namespaces.items():
            namespaces[name] = max(role, namespaces.get(name, Role.NONE))
        expiries = [e for e in (self.expires_at_us, other.expires_at_us) if e is not None]
        return Claims(
            subject=" + ".join(s for s in (self.subject, other.subject) if s),
            system=max(self.system, other.system),
            namespaces=namespaces,
            expires_at_us=min(expiries) if expiries else None,
        )


def claims_from_permissions(
    subject: str, permissions: Iterable[str], expires_at_us: int | None = None
) -> Claims:
    """Claims granting ``permissions`` (``<namespace>:<role>`` strings). An entry that is not of
    that form, or names an unknown role, grants nothing (as Temporal's mapper skips it): a token
    minted for a newer server must not fail on an older one."""
    system = Role.NONE
    namespaces: dict[str, Role] = {}
    for permission in permissions:
        if not isinstance(permission, str):
            continue
        scope, sep, role_text = permission.rpartition(":")
        role = Role.parse(role_text) if sep else None
        if not scope or role is None:
            continue
        if scope == SYSTEM:
            system = max(system, role)
        else:
            namespaces[scope] = max(role, namespaces.get(scope, Role.NONE))
    return Claims(subject=subject, system=system, namespaces=namespaces, expires_at_us=expires_at_us)


def permission_problem(permission: str) -> str | None:
    """Why ``permission`` grants nothing, or None if it is well formed (for tools that mint)."""
    scope, sep, role_text = permission.rpartition(":")
    if not sep or not scope:
        return f"permission {permission!r} is not <namespace>:<role> (e.g. video:write, system:admin)"
    if Role.parse(role_text) is None:
        return f"permission {permission!r} names unknown role {role_text!r} (read, worker, write, admin)"
    return None
