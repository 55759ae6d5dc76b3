"""Signing keys and JWKS documents for the authorization tests (made fresh, never checked in)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cadenza.engine.auth.tokens import issue, public_jwk

NOW_S = 1_700_000_000


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def jwks(*keys: Any) -> dict[str, Any]:
    return {"keys": [public_jwk(k.public_key())[0] for k in keys]}


def kid(key: Any) -> str:
    return public_jwk(key.public_key())[0]["kid"]


def write_jwks(path: Path, *keys: Any) -> Path:
    path.write_text(json.dumps(jwks(*keys)))
    return path


def token(key: Any, *permissions: str, ttl_s: float = 3600, now_s: float = NOW_S, **kw: Any) -> str:
    return issue(key, permissions, ttl_s=ttl_s, now_s=now_s, **kw)


def raw_token(key: Any, payload: dict[str, Any], alg: str, headers: dict[str, Any] | None = None) -> str:
    """A token exactly as given (claims the minting helper would refuse to write)."""
    return jwt.encode(payload, key, algorithm=alg, headers=headers)
