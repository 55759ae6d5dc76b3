"""The default claim mapper: a JWT bearer token, verified against a JWKS, to ``Claims``.

As Temporal's default mapper: the token is signed with RS256 or ES256 by a key published in a JWKS
(a file or an https URL, ``jwtKeyProvider.keySourceURIs``, re-read every ``refreshInterval``), and
its ``permissions`` claim (``permissionsClaimName``) lists ``<namespace>:<role>`` strings. Beyond
Temporal's: ``exp`` is required (a token that never expires cannot be taken back), and a client
certificate's common name may grant permissions too (``tlsSubjectPermissions``).

Verification is the costly part of an authorized call (an RSA or ECDSA check), so a verified token
is kept for ``cache_ttl_s`` (never past its ``exp``): a worker sending the same token on every poll
pays for it once. Time comes from the injected ``Clock``, for the expiry and the key refresh alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import jwt

from cadenza.engine.auth.authorizer import UnauthenticatedError
from cadenza.engine.auth.claims import Claims, claims_from_permissions
from cadenza.engine.clock import Clock, SystemClock

log = logging.getLogger("cadenza.auth")

ALGORITHMS = ("RS256", "ES256")
"""The signatures accepted. Symmetric ones (HS256) are refused: with them anyone holding the
verification key could mint tokens, and a public key passed off as an HMAC secret is a known
forgery."""
MAX_JWKS_BYTES = 1 << 20
FETCH_TIMEOUT_S = 10.0
MIN_UNKNOWN_KID_REFRESH_S = 5.0
"""A token signed by a key not in the JWKS makes the keys be re-read (a rotation), at most this
often: a stream of tokens with made-up key ids must not turn into a stream of fetches."""


class KeySourceError(RuntimeError):
    """A JWKS source could not be read or parsed; the message names the URI."""


@dataclass(frozen=True, slots=True)
class AuthInfo:
    """What a call presents (Temporal's ``authorization.AuthInfo``)."""

    auth_token: str | None = None
    """The bearer token, without the ``Bearer`` prefix."""
    tls_subject: str | None = None
    """The common name of the verified client certificate (mutual TLS), if any."""


class ClaimMapper(Protocol):
    async def get_claims(self, auth: AuthInfo) -> Claims | None:
        """The caller's claims; None when it presents no credential; raises
        ``UnauthenticatedError`` (naming why) for one that does not verify."""
        ...


async def fetch_uri(uri: str) -> bytes:
    """The bytes at ``file:///path`` (or a plain path) or ``http(s)://...``."""
    parsed = urllib.parse.urlparse(uri)
    try:
        if parsed.scheme in ("", "file"):
            path = Path(urllib.parse.unquote(parsed.path if parsed.scheme else uri)).expanduser()
            data = await asyncio.to_thread(path.read_bytes)
        elif parsed.scheme in ("http", "https"):
            data = await asyncio.to_thread(_http_get, uri)
        else:
            raise KeySourceError(f"{uri}: unsupported scheme {parsed.scheme!r} (file, https, http)")
    except OSError as e:
        raise KeySourceError(f"{uri}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    if len(data) > MAX_JWKS_BYTES:
        raise KeySourceError(f"{uri}: {len(data)} bytes, over the {MAX_JWKS_BYTES} byte limit of a JWKS")
    return data


def _http_get(uri: str) -> bytes:
    with urllib.request.urlopen(uri, timeout=FETCH_TIMEOUT_S) as response:
        data: bytes = response.read(MAX_JWKS_BYTES + 1)
        return data


def parse_jwks(uri: str, data: bytes) -> dict[str, jwt.PyJWK]:
    """The keys of one JWKS document by key id (a key without ``kid`` under ``""``)."""
    try:
        doc = json.loads(data)
        keys = doc["keys"] if isinstance(doc, dict) else None
        if not isinstance(keys, list):
            raise KeySourceError(f"{uri}: not a JWKS (no 'keys' list)")
        out: dict[str, jwt.PyJWK] = {}
        for entry in keys:
            key = jwt.PyJWK(entry)
            out[key.key_id or ""] = key
    except (ValueError, KeyError, jwt.PyJWTError) as e:
        raise KeySourceError(f"{uri}: not a valid JWKS: {e}") from None
    if not out:
        raise KeySourceError(f"{uri}: the JWKS has no keys")
    return out


class JwksKeyProvider:
    """The verification keys, from every ``uris`` source, re-read every ``refresh_interval_s``.

    ``start`` reads them once and fails if it cannot (a server must not come up unable to verify
    anything); later refreshes that fail keep the keys already known and log why."""

    def __init__(
        self,
        uris: Sequence[str],
        *,
        refresh_interval_s: float = 60.0,
        clock: Clock | None = None,
        fetch: Callable[[str], Awaitable[bytes]] = fetch_uri,
    ) -> None:
        if not uris:
            raise ValueError("keySourceURIs: give at least one JWKS file or URL")
        if refresh_interval_s <= 0:
            raise ValueError(f"refreshInterval must be positive (got {refresh_interval_s})")
        self.uris = list(uris)
        self.refresh_interval_us = int(refresh_interval_s * 1e6)
        self._clock = clock or SystemClock()
        self._fetch = fetch
        self._keys: dict[str, jwt.PyJWK] = {}
        self._loaded_at_us: int | None = None
        self._refreshing: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.refresh()

    async def refresh(self) -> None:
        """Reads every source now; raises ``KeySourceError`` (and keeps the old keys) on failure."""
        self._loaded_at_us = self._clock.now_us()  # a failing source is retried next interval
        keys: dict[str, jwt.PyJWK] = {}
        for uri in self.uris:
            keys.update(parse_jwks(uri, await self._fetch(uri)))
        self._keys = keys
        log.info("loaded %d verification key(s) from %s", len(keys), ", ".join(self.uris))

    def key(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            # A token without a key id is accepted only when there is exactly one key to try.
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def refresh_in_background_if_due(self) -> None:
        """Starts a refresh when the interval has passed, without making the caller wait."""
        if self._loaded_at_us is None or self._refreshing is not None:
            return
        if self._clock.now_us() - self._loaded_at_us < self.refresh_interval_us:
            return
        self._refreshing = asyncio.get_running_loop().create_task(self._refresh_logged())

    async def refresh_for_unknown_key(self) -> bool:
        """Re-reads the keys now (a token names a key not seen yet), unless that was done less
        than ``MIN_UNKNOWN_KID_REFRESH_S`` ago; True if the keys were re-read."""
        if self._loaded_at_us is not None:
            if self._clock.now_us() - self._loaded_at_us < MIN_UNKNOWN_KID_REFRESH_S * 1e6:
                return False
        await self._refresh_logged()
        return True

    async def _refresh_logged(self) -> None:
        try:
            await self.refresh()
        except KeySourceError as e:
            log.warning("refreshing the verification keys failed, keeping %d known: %s", len(self._keys), e)
        finally:
            self._refreshing = None

    async def close(self) -> None:
        task, self._refreshing = self._refreshing, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class JwtClaimMapper:
    """Claims from a JWT bearer token (and from a client certificate's common name)."""

    def __init__(
        self,
        keys: JwksKeyProvider | None,
        *,
        permissions_claim: str = "permissions",
        audience: str | None = None,
        tls_subject_permissions: Mapping[str, Sequence[str]] | None = None,
        clock: Clock | None = None,
        cache_ttl_s: float = 10.0,
        cache_size: int = 10_000,
    ) -> None:
        self.keys = keys
        self.permissions_claim = permissions_claim
        self.audience = audience
        self._clock = clock or SystemClock()
        self._cache_ttl_us = int(cache_ttl_s * 1e6)
        self._cache_size = cache_size
        self._cache: dict[str, tuple[Claims, int]] = {}
        self._tls: dict[str, Claims] = {
            cn: claims_from_permissions(cn, perms) for cn, perms in (tls_subject_permissions or {}).items()
        }

    async def close(self) -> None:
        if self.keys is not None:
            await self.keys.close()

    @property
    def uses_tls_subject(self) -> bool:
        return bool(self._tls)

    async def get_claims(self, auth: AuthInfo) -> Claims | None:
        token_claims = await self._token_claims(auth.auth_token) if auth.auth_token else None
        cert_claims = self._tls.get(auth.tls_subject) if auth.tls_subject else None
        if token_claims is not None and cert_claims is not None:
            return token_claims.merged(cert_claims)
        return token_claims or cert_claims

    async def _token_claims(self, token: str) -> Claims:
        now_us = self._clock.now_us()
        hit = self._cache.get(token)
        if hit is not None and now_us < hit[1]:
            return hit[0]
        claims = await self.verify(token)
        valid_until = now_us + self._cache_ttl_us
        if claims.expires_at_us is not None:
            valid_until = min(valid_until, claims.expires_at_us)
        if hit is None and len(self._cache) >= self._cache_size:
            self._cache.pop(next(iter(self._cache)))  # the oldest entry
        self._cache[token] = (claims, valid_until)
        return claims

    async def verify(self, token: str) -> Claims:
        """The claims of ``token``, checked now; raises ``UnauthenticatedError`` naming why not."""
        if self.keys is None:
            raise UnauthenticatedError("bearer tokens are not accepted here: no jwtKeyProvider is configured")
        self.keys.refresh_in_background_if_due()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise UnauthenticatedError(f"the bearer token is not a JWT: {e}") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise UnauthenticatedError(
                f"the bearer token is signed with {alg!r}; accepted: {', '.join(ALGORITHMS)}"
            )
        kid = header.get("kid")
        key = self.keys.key(kid)
        if key is None and await self.keys.refresh_for_unknown_key():
            key = self.keys.key(kid)
        if key is None:
            raise UnauthenticatedError(
                f"the bearer token's key id {kid!r} is not among the server's keys"
                if kid is not None
                else "the bearer token names no key id (kid) and the server has several keys"
            )
        payload = self._decode(token, key, alg)
        return self._claims(payload)

    def _decode(self, token: str, key: jwt.PyJWK, alg: str) -> dict[str, Any]:
        if key.algorithm_name != alg:
            # PyJWK names the algorithm from the JWK's alg, else from its key type and curve.
            raise UnauthenticatedError(
                f"the bearer token is signed with {alg} but key {key.key_id!r} is for {key.algorithm_name}"
            )
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.audience,
                # Time is checked below with the injected clock; exp must be present.
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": self.audience is not None,
                    "require": ["exp"],
                },
            )
        except jwt.InvalidSignatureError:
            raise UnauthenticatedError("the bearer token's signature does not verify") from None
        except jwt.MissingRequiredClaimError as e:
            raise UnauthenticatedError(f"the bearer token has no {e.claim!r} claim") from None
        except jwt.InvalidAudienceError as e:
            raise UnauthenticatedError(f"the bearer token is not for this server: {e}") from None
        except (jwt.PyJWTError, ValueError, TypeError) as e:
            raise UnauthenticatedError(f"the bearer token does not verify: {e}") from None
        return payload

    def _claims(self, payload: Mapping[str, Any]) -> Claims:
        now_s = self._clock.now_us() / 1e6
        exp, nbf = payload.get("exp"), payload.get("nbf")
        if not isinstance(exp, int | float):
            raise UnauthenticatedError(f"the bearer token's exp {exp!r} is not a number")
        if exp <= now_s:
            raise UnauthenticatedError(f"the bearer token expired at {_iso(exp)} ({now_s - exp:.0f} s ago)")
        if isinstance(nbf, int | float) and nbf > now_s:
            raise UnauthenticatedError(f"the bearer token is not valid before {_iso(nbf)}")
        permissions = payload.get(self.permissions_claim, [])
        if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
            raise UnauthenticatedError(
                f"the bearer token's {self.permissions_claim!r} claim is not a list of strings"
            )
        return claims_from_permissions(str(payload.get("sub", "")), permissions, int(exp * 1e6))


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
