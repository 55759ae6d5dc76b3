"""The access table and the default authorizer: every API has a role, and exactly that role (or
more) is allowed."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from cadenza.engine.auth import (
    API_ACCESS,
    SYSTEM,
    CallTarget,
    Claims,
    DefaultAuthorizer,
    Role,
    claims_from_permissions,
)
from cadenza.engine.auth.claims import permission_problem
from cadenza.engine.rpc.handlers import Handlers
from cadenza.schemas import api

ROLES = [Role.READ, Role.WORKER, Role.WRITE, Role.ADMIN]


def decide(claims: Claims | None, method: str, namespace: str = "video") -> tuple[bool, str]:
    d = asyncio.run(DefaultAuthorizer().authorize(claims, CallTarget(method, namespace)))
    return d.allowed, d.reason


def test_every_api_has_a_role_and_every_role_an_api() -> None:
    # A new RPC without a row in API_ACCESS would be refused by the default authorizer (fail
    # closed); this names it at once instead.
    assert sorted(set(api.METHODS) - set(API_ACCESS)) == []
    assert sorted(set(API_ACCESS) - set(api.METHODS)) == []
    served = Handlers(object(), None).table()  # type: ignore[arg-type]
    assert sorted(set(served) - set(API_ACCESS)) == []


@pytest.mark.parametrize("method", sorted(API_ACCESS))
def test_each_api_needs_exactly_its_role(method: str) -> None:
    access = API_ACCESS[method]
    if access.scope == "authenticated":
        assert decide(Claims(subject="anyone"), method)[0]
        assert not decide(None, method)[0]
        return
    scope = SYSTEM if access.scope == "system" else "video"
    for role in ROLES:
        allowed, reason = decide(claims_from_permissions("u", [f"{scope}:{role.label}"]), method)
        assert allowed == (role >= access.role), (method, role, reason)
        if not allowed:
            assert f"needs role {access.role.label}" in reason
            assert f"{scope}:{access.role.label}" in reason
            assert "caller 'u' has" in reason


def test_a_namespace_role_does_not_reach_another_namespace_or_the_system() -> None:
    admin_of_video = claims_from_permissions("u", ["video:admin"])
    allowed, reason = decide(admin_of_video, "DescribeWorkflowExecution", "reports")
    assert not allowed
    assert "namespace 'reports'" in reason and "reports:read" in reason
    allowed, reason = decide(admin_of_video, "RegisterNamespace")
    assert not allowed and "system:admin" in reason


def test_a_system_role_holds_in_every_namespace() -> None:
    reader = claims_from_permissions("ops", ["system:read"])
    assert decide(reader, "DescribeWorkflowExecution", "anything")[0]
    assert not decide(reader, "StartWorkflowExecution", "anything")[0]
    assert decide(claims_from_permissions("ops", ["system:admin"]), "TerminateWorkflowExecution")[0]


def test_worker_role_polls_and_reads_but_cannot_start() -> None:
    worker = claims_from_permissions("w", ["video:worker"])
    for method in ("PollWorkflowTaskQueue", "RespondActivityTaskCompleted", "GetWorkflowExecutionHistory"):
        assert decide(worker, method)[0], method
    for method in ("StartWorkflowExecution", "SignalWorkflowExecution", "TerminateWorkflowExecution"):
        assert not decide(worker, method)[0], method


def test_an_api_missing_from_the_table_is_refused() -> None:
    allowed, reason = decide(claims_from_permissions("root", ["system:admin"]), "NoSuchMethod")
    assert not allowed and "no entry in the access table" in reason


def test_permissions_parse_into_the_highest_role_per_scope() -> None:
    c = claims_from_permissions(
        "u",
        ["video:read", "video:write", "Reports:Reader", "system:read", "a:b:write", "junk", "x:owner", ""],
    )
    assert c.namespaces == {"video": Role.WRITE, "Reports": Role.READ, "a:b": Role.WRITE}
    assert c.system == Role.READ
    assert c.role_in("video") == Role.WRITE and c.role_in("elsewhere") == Role.READ


def test_permission_problems_name_the_permission() -> None:
    assert permission_problem("video:write") is None
    assert "unknown role 'owner'" in (permission_problem("video:owner") or "")
    assert "not <namespace>:<role>" in (permission_problem("video") or "")


def test_merged_claims_take_the_higher_role_and_earlier_expiry() -> None:
    a = Claims("token", Role.NONE, {"video": Role.READ}, expires_at_us=200)
    b = Claims("cert", Role.READ, {"video": Role.WRITE, "reports": Role.READ}, expires_at_us=None)
    m = a.merged(b)
    assert m.subject == "token + cert" and m.system == Role.READ
    assert m.namespaces == {"video": Role.WRITE, "reports": Role.READ}
    assert m.expires_at_us == 200


def test_the_docs_table_matches_the_access_table() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "authorization.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+?) \|", doc, flags=re.MULTILINE))
    assert sorted(rows) == sorted(API_ACCESS)
    for method, access in API_ACCESS.items():
        if access.scope == "authenticated":
            assert rows[method] == "any verified caller", method
        elif access.scope == "system":
            assert rows[method] == f"`system:{access.role.label}`", method
        else:
            assert rows[method] == f"`<namespace>:{access.role.label}`", method
