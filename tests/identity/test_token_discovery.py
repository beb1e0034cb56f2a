"""Tokens validated against an issuer discovered from OpenID Connect metadata, through key rotation."""

from __future__ import annotations

import json

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.adapters.openid_keys import OpenIdKeys
from shared.identity.tokens import TokenInvalid, TokenValidator
from tests.support.tokens import AUDIENCE


def public_jwk(key, kid: str) -> dict:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


@pytest.fixture
async def identity_provider():
    """A local OpenID Connect provider whose signing keys the test can rotate."""
    state = {"keys": [], "metadata_calls": 0}
    app = web.Application()

    async def metadata(request: web.Request) -> web.Response:
        state["metadata_calls"] += 1
        base = f"http://127.0.0.1:{request.url.port}"
        return web.json_response({"issuer": f"{base}/tenant/v2.0", "jwks_uri": f"{base}/keys"})

    async def keys(request: web.Request) -> web.Response:
        return web.json_response({"keys": state["keys"]})

    app.router.add_get("/tenant/v2.0/.well-known/openid-configuration", metadata)
    app.router.add_get("/keys", keys)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", state
    await runner.cleanup()


def token(key, kid: str, issuer: str) -> str:
    import time

    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": "system:reporting",
        "roles": ["events.read"],
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


async def test_issuer_and_keys_are_discovered_and_rotation_is_followed(identity_provider):
    base, state = identity_provider
    first, second = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    state["keys"] = [public_jwk(first, "k1")]
    keys = OpenIdKeys(f"{base}/tenant/v2.0/.well-known/openid-configuration", min_refresh_seconds=0)
    validator = TokenValidator(issuer=None, audience=AUDIENCE, keys=keys)
    issuer = f"{base}/tenant/v2.0"

    principal = await validator.validate(token(first, "k1", issuer))
    assert principal.subject == "system:reporting" and "events.read" in principal.scopes

    state["keys"] = [public_jwk(first, "k1"), public_jwk(second, "k2")]  # the provider rolls a new key in
    assert (await validator.validate(token(second, "k2", issuer))).subject == "system:reporting"
    assert state["metadata_calls"] == 2  # one refresh, for the unknown key id

    with pytest.raises(TokenInvalid, match="another issuer"):
        await validator.validate(token(second, "k2", "https://evil.example/v2.0"))
    state["keys"] = [public_jwk(second, "k2")]  # the old key is rolled out
    await validator.validate(token(second, "k2", issuer))


async def test_unknown_key_ids_do_not_hammer_the_provider(identity_provider):
    base, state = identity_provider
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    state["keys"] = [public_jwk(key, "k1")]
    validator = TokenValidator(
        issuer=None, audience=AUDIENCE, keys=OpenIdKeys(f"{base}/tenant/v2.0/.well-known/openid-configuration")
    )
    issuer = f"{base}/tenant/v2.0"
    await validator.validate(token(key, "k1", issuer))
    for n in range(20):
        with pytest.raises(TokenInvalid, match="unknown key"):
            await validator.validate(token(key, f"forged-{n}", issuer))
    assert state["metadata_calls"] == 1
