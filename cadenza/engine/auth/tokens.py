"""Dev keys and tokens: a signing key with its JWKS, and tokens minted with it.

For tests, demos and a dev server (``cadenza admin token keygen`` / ``issue``); production tokens
come from the organisation's identity provider, whose JWKS the server is pointed at. The key id is
the key's RFC 7638 thumbprint, so ``issue`` names the same ``kid`` as the JWKS ``keygen`` wrote
without storing it anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cadenza.engine.auth.claims import permission_problem

PRIVATE_KEY_FILE = "private.pem"
JWKS_FILE = "jwks.json"


@dataclass(frozen=True)
class DevKeys:
    private_key: Path
    jwks: Path
    key_id: str
    algorithm: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(public_key: Any) -> tuple[dict[str, str], str]:
    """The public JWK (with ``kid``, ``alg``, ``use``) and its algorithm."""
    if isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
        members = {"e": _b64(e), "kty": "RSA", "n": _b64(n)}
        alg = "RS256"
    elif isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve, ec.SECP256R1):
        numbers_ec = public_key.public_numbers()
        members = {
            "crv": "P-256",
            "kty": "EC",
            "x": _b64(numbers_ec.x.to_bytes(32, "big")),
            "y": _b64(numbers_ec.y.to_bytes(32, "big")),
        }
        alg = "ES256"
    else:
        raise ValueError("the key must be RSA (RS256) or EC on P-256 (ES256)")
    # RFC 7638: the SHA-256 of the required members, sorted, without whitespace.
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    kid = _b64(hashlib.sha256(canonical).digest())
    return {**members, "kid": kid, "alg": alg, "use": "sig"}, alg


def keygen(out_dir: str | Path, *, algorithm: str = "RS256") -> DevKeys:
    """Writes a new private key (``private.pem``, readable by its owner only) and the JWKS of its
    public half (``jwks.json``) into ``out_dir``; refuses to overwrite an existing key."""
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    key_path, jwks_path = out / PRIVATE_KEY_FILE, out / JWKS_FILE
    if key_path.exists():
        raise FileExistsError(f"{key_path} exists; remove it or choose another directory")
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if algorithm == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif algorithm == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"algorithm {algorithm!r} is not RS256 or ES256")
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    jwk, alg = public_jwk(private.public_key())
    jwks_path.write_text(json.dumps({"keys": [jwk]}, indent=2) + "\n")
    return DevKeys(key_path, jwks_path, jwk["kid"], alg)


def load_private_key(path: str | Path) -> Any:
    data = Path(path).expanduser().read_bytes()
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: not an unencrypted PEM private key: {e}") from None


def issue(
    private_key: Any,
    permissions: Sequence[str],
    *,
    ttl_s: float = 3600.0,
    subject: str = "cadenza-dev",
    audience: str | None = None,
    permissions_claim: str = "permissions",
    now_s: float | None = None,
) -> str:
    """A token signed with ``private_key`` (RS256 or ES256 by its type) granting ``permissions``,
    valid for ``ttl_s`` from ``now_s`` (default: now)."""
    for p in permissions:
        problem = permission_problem(p)
        if problem:
            raise ValueError(problem)
    if ttl_s <= 0:
        raise ValueError(f"ttl must be positive (got {ttl_s} s)")
    jwk, alg = public_jwk(private_key.public_key())
    now = time.time() if now_s is None else now_s
    payload: dict[str, Any] = {
        "sub": subject,
        "iat": int(now),
        "exp": int(now + ttl_s),
        permissions_claim: list(permissions),
    }
    if audience is not None:
        payload["aud"] = audience
    return jwt.encode(payload, private_key, algorithm=alg, headers={"kid": jwk["kid"]})
