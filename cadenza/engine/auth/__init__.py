"""Authorization at the frontend: who a caller is (claim mapper) and what it may do (authorizer).

Shaped as Temporal's ``ClaimMapper`` / ``Authorizer``: the default claim mapper verifies a JWT
bearer token against a JWKS and reads its ``permissions`` claim (``video:write``,
``system:admin``); the default authorizer checks the role each API needs (``API_ACCESS``).
See ``docs/authorization.md``.
"""

from cadenza.engine.auth.api_access import API_ACCESS, Access
from cadenza.engine.auth.authorizer import (
    Authorizer,
    CallTarget,
    Decision,
    DefaultAuthorizer,
    NoopAuthorizer,
    PermissionDeniedError,
    UnauthenticatedError,
)
from cadenza.engine.auth.claims import SYSTEM, Claims, Role, claims_from_permissions
from cadenza.engine.auth.config import AuthorizationSettings, open_gate
from cadenza.engine.auth.gate import AuthGate
from cadenza.engine.auth.jwt_mapper import (
    AuthInfo,
    ClaimMapper,
    JwksKeyProvider,
    JwtClaimMapper,
    KeySourceError,
)

__all__ = [
    "API_ACCESS",
    "SYSTEM",
    "Access",
    "AuthGate",
    "AuthInfo",
    "AuthorizationSettings",
    "Authorizer",
    "CallTarget",
    "ClaimMapper",
    "Claims",
    "Decision",
    "DefaultAuthorizer",
    "JwksKeyProvider",
    "JwtClaimMapper",
    "KeySourceError",
    "NoopAuthorizer",
    "PermissionDeniedError",
    "Role",
    "UnauthenticatedError",
    "claims_from_permissions",
    "open_gate",
]
