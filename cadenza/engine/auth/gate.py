"""Authorization at the gRPC frontend: each call's credentials to claims to a decision.

``RpcServer`` runs ``AuthGate.check`` on every decoded request when authorization is configured;
an open server has no gate and pays nothing. The gate:

1. reads the ``authorization: Bearer <token>`` metadata and, when the claim mapper maps client
   certificates, the verified certificate's common name;
2. asks the claim mapper for the caller's claims: no credential at all, or one that does not
   verify, is UNAUTHENTICATED (naming why);
3. finds the namespace(s) the call acts in (``API_ACCESS``: a request field, or the namespace id
   inside a task token) and asks the authorizer: a refusal is PERMISSION_DENIED naming the
   namespace and the missing role.

Refusals are logged with the caller's subject, never with its token.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from cadenza.engine.auth.api_access import API_ACCESS, Access
from cadenza.engine.auth.authorizer import (
    Authorizer,
    CallTarget,
    PermissionDeniedError,
    UnauthenticatedError,
)
from cadenza.engine.auth.claims import SYSTEM, Claims
from cadenza.engine.auth.jwt_mapper import AuthInfo, ClaimMapper
from cadenza.engine.forwarding import CALLER_TOKEN
from cadenza.engine.history.workflow_tasks import decode_token

log = logging.getLogger("cadenza.auth")

AUTHORIZATION_KEY = "authorization"
"""The metadata key of the bearer token (gRPC metadata keys are lower case)."""
NO_CREDENTIALS = (
    "no credentials: this server requires 'authorization: Bearer <token>' metadata "
    "(CLI: --auth-token or CADENZA_AUTH_TOKEN; SDK: Client.connect(..., api_key=...))"
)

NamespaceNameOfId = Callable[[str], Awaitable[str]]


class AuthGate:
    def __init__(
        self,
        mapper: ClaimMapper,
        authorizer: Authorizer,
        namespace_name_of_id: NamespaceNameOfId,
        *,
        tls_subject: bool = False,
    ) -> None:
        self.mapper = mapper
        self.authorizer = authorizer
        self._name_of_id = namespace_name_of_id
        self.tls_subject = tls_subject
        """Whether to read the client certificate's common name (the mapper maps subjects)."""

    async def check(self, method: str, record: dict[str, Any], context: Any) -> Claims:
        """Returns the caller's claims if ``method`` is allowed; raises ``UnauthenticatedError``
        or ``PermissionDeniedError`` otherwise."""
        try:
            auth = AuthInfo(_bearer(context.invocation_metadata()), self._subject(context))
            claims = await self.mapper.get_claims(auth)
        except UnauthenticatedError as e:
            log.warning("refused %s: %s", method, e.message)
            raise
        if claims is None:
            log.warning("refused %s: no credentials", method)
            raise UnauthenticatedError(NO_CREDENTIALS, api=method)
        access = API_ACCESS.get(method)
        namespaces = await self._namespaces(access, record) if access is not None else [""]
        for namespace in namespaces:
            decision = await self.authorizer.authorize(claims, CallTarget(method, namespace, record))
            if not decision.allowed:
                log.warning("refused %s for %r: %s", method, claims.subject, decision.reason)
                raise PermissionDeniedError(
                    decision.reason,
                    api=method,
                    namespace=decision.namespace or namespace or SYSTEM,
                    role=decision.role.label,
                )
        # A request this frontend forwards to another cluster goes on with the caller's token.
        CALLER_TOKEN.set(auth.auth_token or "")
        return claims

    async def close(self) -> None:
        close = getattr(self.mapper, "close", None)
        if close is not None:
            await close()

    def _subject(self, context: Any) -> str | None:
        if not self.tls_subject:
            return None
        names = (context.auth_context() or {}).get("x509_common_name")
        return names[0].decode(errors="replace") if names else None

    async def _namespaces(self, access: Access, record: dict[str, Any]) -> list[str]:
        out: list[str] = []
        for where in access.namespace_from:
            if where == "task_token":
                namespace_id = decode_token(record["task_token"])[0]
                name = await self._name_of_id(namespace_id)
            else:
                name = str(record.get(where) or "")
            if name not in out:
                out.append(name)
        return out or [""]


def _bearer(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == AUTHORIZATION_KEY:
            text = value if isinstance(value, str) else value.decode(errors="replace")
            scheme, _, token = text.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise UnauthenticatedError("the authorization metadata must be 'Bearer <token>'")
            return token.strip()
    return None
