"""``global.authorization`` in the server config, as Temporal writes it, and what it builds.

    global:
      authorization:
        jwtKeyProvider:
          keySourceURIs: ["file:///etc/cadenza/jwks.json"]   # or https://issuer/.well-known/jwks.json
          refreshInterval: 1m
        permissionsClaimName: permissions
        authorizer: default          # default | noop | package.module:factory
        claimMapper: default         # default | package.module:factory
        audience: cadenza            # optional: tokens must name it in aud
        tlsSubjectPermissions:       # optional, with mutual TLS: certificate CN -> permissions
          billing-worker: ["billing:worker"]
        tokenCacheTTL: 10s           # how long a verified token is remembered

Without the block, or with ``authorizer: noop``, the server is open: no credential is asked for
and no call pays for a check. A key the loader does not know is an error naming it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from cadenza.engine.auth.authorizer import Authorizer, DefaultAuthorizer, NoopAuthorizer
from cadenza.engine.auth.claims import permission_problem
from cadenza.engine.auth.gate import AuthGate, NamespaceNameOfId
from cadenza.engine.auth.jwt_mapper import ClaimMapper, JwksKeyProvider, JwtClaimMapper
from cadenza.engine.clock import Clock

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str | float) -> float:
    """Seconds from ``30``, ``500ms``, ``10s``, ``1m`` or ``1h``; raises ValueError."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().lower()
        unit = next((u for u in ("ms", "s", "m", "h") if text.endswith(u)), "")
        try:
            seconds = float(text[: len(text) - len(unit)]) * _UNITS.get(unit, 1.0)
        except ValueError:
            raise ValueError(f"{value!r} is not a duration such as 30s, 1m or 1h") from None
    if seconds <= 0:
        raise ValueError(f"{value!r} must be positive")
    return seconds


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JwtKeyProviderConfig(_Strict):
    keySourceURIs: list[str] = []
    """JWKS documents: ``file:///path`` (or a path) or ``https://...``."""
    refreshInterval: str | float = "1m"

    @field_validator("keySourceURIs")
    @classmethod
    def _schemes(cls, uris: list[str]) -> list[str]:
        for uri in uris:
            scheme = uri.partition("://")[0] if "://" in uri else ""
            if scheme not in ("", "file", "http", "https"):
                raise ValueError(f"{uri!r}: unsupported scheme {scheme!r} (file, https, http)")
        return uris

    @field_validator("refreshInterval")
    @classmethod
    def _interval(cls, value: str | float) -> str | float:
        parse_duration(value)
        return value


class AuthorizationConfig(_Strict):
    jwtKeyProvider: JwtKeyProviderConfig = JwtKeyProviderConfig()
    permissionsClaimName: str = "permissions"
    authorizer: str = "default"
    claimMapper: str = "default"
    audience: str | None = None
    tlsSubjectPermissions: dict[str, list[str]] = {}
    tokenCacheTTL: str | float = "10s"

    @field_validator("authorizer", "claimMapper")
    @classmethod
    def _plugin(cls, value: str) -> str:
        if value not in ("default", "noop", "") and ":" not in value:
            raise ValueError(f"{value!r}: use default, noop or package.module:factory")
        return value

    @field_validator("tokenCacheTTL")
    @classmethod
    def _ttl(cls, value: str | float) -> str | float:
        parse_duration(value)
        return value

    @field_validator("tlsSubjectPermissions")
    @classmethod
    def _permissions(cls, table: dict[str, list[str]]) -> dict[str, list[str]]:
        for subject, permissions in table.items():
            for p in permissions:
                problem = permission_problem(p)
                if problem:
                    raise ValueError(f"{subject}: {problem}")
        return table

    @model_validator(mode="after")
    def _some_credential(self) -> AuthorizationConfig:
        if self.claimMapper == "noop":
            raise ValueError(
                "claimMapper noop would refuse every call; use authorizer: noop for an open server"
            )
        secured = self.authorizer not in ("noop", "")
        if secured and self.claimMapper == "default":
            if not self.jwtKeyProvider.keySourceURIs and not self.tlsSubjectPermissions:
                raise ValueError(
                    "jwtKeyProvider.keySourceURIs is empty and there are no tlsSubjectPermissions: "
                    "no caller could be authenticated"
                )
        return self


@dataclass(frozen=True)
class AuthorizationSettings:
    """What ``ServerProcess`` secures the frontend with (None on ``ServerSettings``: open)."""

    key_source_uris: tuple[str, ...] = ()
    refresh_interval_s: float = 60.0
    permissions_claim: str = "permissions"
    audience: str | None = None
    authorizer: str = "default"
    claim_mapper: str = "default"
    tls_subject_permissions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    token_cache_ttl_s: float = 10.0

    @property
    def open(self) -> bool:
        return self.authorizer in ("noop", "")


def _block(doc: Mapping[str, Any]) -> Any:
    g = doc.get("global")
    return g.get("authorization") if isinstance(g, Mapping) else None


def authorization_problems(doc: Mapping[str, Any]) -> list[str]:
    """Every problem of ``global.authorization`` in a config document, each as ``<key>: <what>``."""
    block = _block(doc)
    if block is None:
        return []
    try:
        AuthorizationConfig.model_validate(block)
    except ValidationError as e:
        out = []
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            out.append(f"global.authorization{'.' + loc if loc else ''}: {msg}")
        return out
    return []


def authorization_settings(doc: Mapping[str, Any]) -> AuthorizationSettings | None:
    """The settings of ``global.authorization`` (None: no block)."""
    block = _block(doc)
    if block is None:
        return None
    c = AuthorizationConfig.model_validate(block)
    return AuthorizationSettings(
        key_source_uris=tuple(c.jwtKeyProvider.keySourceURIs),
        refresh_interval_s=parse_duration(c.jwtKeyProvider.refreshInterval),
        permissions_claim=c.permissionsClaimName,
        audience=c.audience,
        authorizer=c.authorizer,
        claim_mapper=c.claimMapper,
        tls_subject_permissions={k: tuple(v) for k, v in c.tlsSubjectPermissions.items()},
        token_cache_ttl_s=parse_duration(c.tokenCacheTTL),
    )


def _plugin(spec: str, what: str) -> Any:
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"global.authorization.{what}: cannot load {spec!r}: {e}") from None
    return factory


async def open_gate(
    settings: AuthorizationSettings | None,
    namespace_name_of_id: NamespaceNameOfId,
    *,
    clock: Clock | None = None,
) -> AuthGate | None:
    """The gate ``settings`` describe, its keys loaded (None when the server is open). Raises
    ``KeySourceError`` when a JWKS cannot be read: a server must not start unable to verify."""
    if settings is None or settings.open:
        return None
    authorizer: Authorizer
    if settings.authorizer == "default":
        authorizer = DefaultAuthorizer()
    else:
        authorizer = _plugin(settings.authorizer, "authorizer")()
    mapper: ClaimMapper
    tls_subject = False
    if settings.claim_mapper == "default":
        keys = None
        if settings.key_source_uris:
            keys = JwksKeyProvider(
                settings.key_source_uris, refresh_interval_s=settings.refresh_interval_s, clock=clock
            )
            await keys.start()
        jwt_mapper = JwtClaimMapper(
            keys,
            permissions_claim=settings.permissions_claim,
            audience=settings.audience,
            tls_subject_permissions=settings.tls_subject_permissions,
            clock=clock,
            cache_ttl_s=settings.token_cache_ttl_s,
        )
        tls_subject = jwt_mapper.uses_tls_subject
        mapper = jwt_mapper
    else:
        mapper = _plugin(settings.claim_mapper, "claimMapper")(settings)
        tls_subject = bool(getattr(mapper, "uses_tls_subject", False))
    return AuthGate(mapper, authorizer, namespace_name_of_id, tls_subject=tls_subject)


__all__ = [
    "AuthorizationConfig",
    "AuthorizationSettings",
    "NoopAuthorizer",
    "authorization_problems",
    "authorization_settings",
    "open_gate",
    "parse_duration",
]
