"""The default claim mapper: JWT verification against a JWKS, expiry on an injected clock, the
token cache and the key refresh."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from cadenza.engine.auth import AuthInfo, JwksKeyProvider, JwtClaimMapper, Role, UnauthenticatedError
from cadenza.engine.auth.jwt_mapper import KeySourceError
from cadenza.engine.clock import ManualClock

from .keys import NOW_S, ec_key, jwks, kid, raw_token, rsa_key, token

RSA = rsa_key()
EC = ec_key()
OTHER = rsa_key()


class Source:
    """A JWKS "URL" whose document the test changes, counting fetches."""

    def __init__(self, *keys: Any) -> None:
        self.doc: dict[str, Any] = jwks(*keys)
        self.fetches = 0
        self.fail = False

    async def __call__(self, uri: str) -> bytes:
        self.fetches += 1
        if self.fail:
            raise KeySourceError(f"{uri}: cannot read: connection refused")
        return json.dumps(self.doc).encode()


def mapper_for(source: Source, clock: ManualClock, **kw: Any) -> Callable[[], Awaitable[JwtClaimMapper]]:
    async def make() -> JwtClaimMapper:
        keys = JwksKeyProvider(
            ["https://idp.example/jwks.json"], refresh_interval_s=60, clock=clock, fetch=source
        )
        await keys.start()
        return JwtClaimMapper(keys, clock=clock, **kw)

    return make


def clock() -> ManualClock:
    return ManualClock(NOW_S * 1_000_000)


def claims(mapper: JwtClaimMapper, tok: str | None, subject: str | None = None) -> Any:
    return asyncio.run(mapper.get_claims(AuthInfo(tok, subject)))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def refused(mapper: JwtClaimMapper, tok: str) -> str:
    with pytest.raises(UnauthenticatedError) as e:
        run(mapper.verify(tok))
    return e.value.message


def test_rs256_and_es256_tokens_map_to_roles() -> None:
    c = clock()
    mapper = run(mapper_for(Source(RSA, EC), c)())
    for key in (RSA, EC):
        got = run(mapper.verify(token(key, "video:write", "reports:read", "system:admin", subject="alice")))
        assert got.subject == "alice"
        assert got.namespaces == {"video": Role.WRITE, "reports": Role.READ}
        assert got.system == Role.ADMIN
        assert got.expires_at_us == (NOW_S + 3600) * 1_000_000


def test_expiry_follows_the_injected_clock() -> None:
    c = clock()
    mapper = run(mapper_for(Source(RSA), c)())
    tok = token(RSA, "video:read", ttl_s=60)
    assert run(mapper.verify(tok)).namespaces == {"video": Role.READ}
    c.advance(60.0)
    message = refused(mapper, tok)
    assert "expired at 2023-11-14T22:14:20Z (0 s ago)" in message


def test_not_yet_valid_token_is_refused() -> None:
    mapper = run(mapper_for(Source(RSA), clock())())
    tok = raw_token(
        RSA, {"exp": NOW_S + 600, "nbf": NOW_S + 300, "permissions": []}, "RS256", {"kid": kid(RSA)}
    )
    assert "not valid before" in refused(mapper, tok)


def test_a_token_signed_by_another_key_with_the_same_kid_fails_its_signature() -> None:
    mapper = run(mapper_for(Source(RSA), clock())())
    forged = raw_token(
        OTHER, {"exp": NOW_S + 60, "permissions": ["system:admin"]}, "RS256", {"kid": kid(RSA)}
    )
    assert refused(mapper, forged) == "the bearer token's signature does not verify"


def test_symmetric_and_none_algorithms_are_refused() -> None:
    mapper = run(mapper_for(Source(RSA), clock())())
    hs = raw_token("secret-that-is-long-enough-for-hs256!", {"exp": NOW_S + 60}, "HS256", {"kid": kid(RSA)})
    assert "signed with 'HS256'; accepted: RS256, ES256" in refused(mapper, hs)
    none = raw_token(None, {"exp": NOW_S + 60}, "none", {"kid": kid(RSA)})
    assert "signed with 'none'" in refused(mapper, none)


def test_algorithm_must_match_the_key() -> None:
    mapper = run(mapper_for(Source(RSA, EC), clock())())
    # ES256 signature by the EC key, but naming the RSA key's id.
    tok = raw_token(EC, {"exp": NOW_S + 60}, "ES256", {"kid": kid(RSA)})
    assert "signed with ES256 but key" in refused(mapper, tok) and "is for RS256" in refused(mapper, tok)


def test_claims_that_are_missing_or_malformed() -> None:
    mapper = run(mapper_for(Source(RSA), clock())())
    headers = {"kid": kid(RSA)}
    no_exp = raw_token(RSA, {"permissions": ["video:write"]}, "RS256", headers)
    assert refused(mapper, no_exp) == "the bearer token has no 'exp' claim"
    # No permissions claim: a verified caller with no role (refused later, naming the role).
    bare = run(mapper.verify(raw_token(RSA, {"exp": NOW_S + 60, "sub": "bob"}, "RS256", headers)))
    assert bare.subject == "bob" and bare.namespaces == {} and bare.system == Role.NONE
    as_string = raw_token(RSA, {"exp": NOW_S + 60, "permissions": "video:write"}, "RS256", headers)
    assert "'permissions' claim is not a list of strings" in refused(mapper, as_string)
    assert "not a JWT" in refused(mapper, "not-a-token")


def test_the_permissions_claim_name_and_audience_are_configurable() -> None:
    mapper = run(mapper_for(Source(RSA), clock(), permissions_claim="roles", audience="cadenza")())
    good = token(RSA, "video:write", permissions_claim="roles", audience="cadenza")
    assert run(mapper.verify(good)).namespaces == {"video": Role.WRITE}
    assert "not for this server" in refused(
        mapper, token(RSA, "video:write", permissions_claim="roles", audience="x")
    )


def test_verified_tokens_are_cached_until_the_ttl_or_their_expiry() -> None:
    c = clock()
    mapper = run(mapper_for(Source(RSA), c, cache_ttl_s=10)())
    calls = 0
    verify = mapper.verify

    async def counting(tok: str) -> Any:
        nonlocal calls
        calls += 1
        return await verify(tok)

    mapper.verify = counting  # type: ignore[method-assign]
    tok = token(RSA, "video:write", ttl_s=15)
    for _ in range(3):
        assert claims(mapper, tok).namespaces == {"video": Role.WRITE}
    assert calls == 1
    c.advance(11)  # past the cache ttl: verified again
    claims(mapper, tok)
    assert calls == 2
    c.advance(5)  # past exp (15 s), though within the new cache entry's ttl
    with pytest.raises(UnauthenticatedError, match="expired"):
        claims(mapper, tok)


def test_an_unknown_key_id_rereads_the_keys_at_most_every_few_seconds() -> None:
    c = clock()
    source = Source(RSA)
    mapper = run(mapper_for(source, c)())
    rotated = token(OTHER, "video:read")
    c.advance(10)
    assert "is not among the server's keys" in refused(mapper, rotated)
    assert source.fetches == 2  # the start, and one re-read for the unknown key
    assert "is not among" in refused(mapper, rotated)
    assert source.fetches == 2  # not again so soon
    source.doc = jwks(RSA, OTHER)  # the issuer publishes the new key
    c.advance(10)
    assert run(mapper.verify(rotated)).namespaces == {"video": Role.READ}
    assert source.fetches == 3


def test_keys_are_refreshed_in_the_background_on_the_interval_and_kept_on_failure() -> None:
    c = clock()
    source = Source(RSA)

    async def scenario() -> None:
        mapper = await mapper_for(source, c)()
        tok = token(RSA, "video:read", ttl_s=7200)
        await mapper.verify(tok)
        assert source.fetches == 1
        c.advance(61)
        source.fail = True
        await mapper.verify(tok)  # starts a refresh; answers with the keys it has
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert source.fetches == 2
        assert (await mapper.verify(tok)).namespaces == {"video": Role.READ}  # old keys kept
        source.fail = False
        source.doc = jwks(OTHER)  # the old key is withdrawn
        c.advance(61)
        await mapper.verify(tok)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert source.fetches == 3
        with pytest.raises(UnauthenticatedError, match="is not among the server's keys"):
            await mapper.verify(token(RSA, "video:read", ttl_s=7200, now_s=NOW_S + 1))
        await mapper.close()

    run(scenario())


def test_a_key_source_that_cannot_be_read_fails_the_start() -> None:
    source = Source(RSA)
    source.fail = True
    with pytest.raises(KeySourceError, match="connection refused"):
        run(mapper_for(source, clock())())


def test_a_jwks_file_is_read(tmp_path: Any) -> None:
    from .keys import write_jwks

    path = write_jwks(tmp_path / "jwks.json", EC)

    async def scenario() -> Role:
        keys = JwksKeyProvider([path.as_uri()], clock=clock())
        await keys.start()
        return (await JwtClaimMapper(keys, clock=clock()).verify(token(EC, "video:admin"))).role_in("video")

    assert run(scenario()) == Role.ADMIN
    (tmp_path / "bad.json").write_text('{"keys": []}')
    with pytest.raises(KeySourceError, match="has no keys"):
        run(JwksKeyProvider([str(tmp_path / "bad.json")]).start())
    with pytest.raises(KeySourceError, match="cannot read"):
        run(JwksKeyProvider([(tmp_path / "missing.json").as_uri()]).start())


def test_client_certificate_subjects_map_to_roles_and_merge_with_a_token() -> None:
    c = clock()
    mapper = run(mapper_for(Source(RSA), c, tls_subject_permissions={"billing-worker": ["billing:worker"]})())
    assert mapper.uses_tls_subject
    by_cert = claims(mapper, None, "billing-worker")
    assert by_cert.namespaces == {"billing": Role.WORKER}
    both = claims(mapper, token(RSA, "video:read", subject="alice"), "billing-worker")
    assert both.namespaces == {"billing": Role.WORKER, "video": Role.READ}
    assert claims(mapper, None, "someone-else") is None
    assert claims(mapper, None) is None
