"""A token is verified only with an algorithm of its issuer key's type; any other header is a 401.

The tokens are forged here with generated RSA and EC keys (PyJWT signs them); junk signatures are
spliced in by hand, since PyJWT will not sign with a key of the wrong type.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shared.identity.tokens import JwksFileKeys, TokenInvalid, TokenValidator
from tests.support.tokens import AUDIENCE, ISSUER

JUNK_SIGNATURE = base64.urlsafe_b64encode(b"\x01" * 64).decode().rstrip("=")


def b64(document: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


def claims(sub: str = "org:991825827", scopes: str = "events.read") -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "scp": scopes, "iat": now, "nbf": now, "exp": now + 600}


def forged(header: dict[str, Any], signature: str = JUNK_SIGNATURE) -> str:
    """A token with any header at all, a valid-looking payload and the given (junk) signature."""
    return f"{b64(header)}.{b64(claims())}.{signature}"


def public_jwk(key: Any, kid: str, **extra: str) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        document = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        document = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**document, "kid": kid, "use": "sig", **extra}


def validator(tmp_path: Path, *jwks: dict[str, Any]) -> TokenValidator:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": list(jwks)}))
    return TokenValidator(issuer=ISSUER, audience=AUDIENCE, keys=JwksFileKeys(path))


async def refused(validator: TokenValidator, token: str) -> str:
    with pytest.raises(TokenInvalid) as caught:
        await validator.validate(token)
    return str(caught.value)


# ---------------------------------------------------------------------------------- through the API

# Algorithms an attacker names in the header of a token bearing the RSA issuer's key id.
FOREIGN_ALGORITHMS = ["ES256", "ES384", "ES512", "EdDSA", "HS256", "HS512", "none", "RSA-OAEP", "XX"]


@pytest.mark.parametrize("algorithm", FOREIGN_ALGORITHMS)
async def test_a_header_naming_another_algorithm_family_is_a_401_problem(client, issuer, resource, algorithm):
    token = forged({"alg": algorithm, "typ": "JWT", "kid": issuer.kid})
    response = await client.get(
        "/api/v1/events", params={"resource": resource}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    document = response.json()
    assert document["status"] == 401
    assert "algorithm" in document["detail"]
    for leaked in ("PEM", "Expecting", "Traceback", "Error"):
        assert leaked not in response.text


@pytest.mark.parametrize(
    "header",
    [
        {"alg": ["RS256"], "kid": "test-key"},
        {"alg": {"RS256": 1}, "kid": "test-key"},
        {"alg": "RS256", "kid": ["test-key"]},
        {"alg": "RS256", "kid": {"a": 1}},
        {"alg": None, "kid": "test-key"},
    ],
    ids=["alg list", "alg object", "kid list", "kid object", "alg null"],
)
async def test_header_members_of_the_wrong_json_type_are_a_401_problem(client, issuer, resource, header):
    token = forged(header)
    response = await client.get(
        "/api/v1/events", params={"resource": resource}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_the_issuers_own_tokens_still_pass(client, issuer, resource):
    response = await client.get("/api/v1/events", params={"resource": resource}, headers=issuer.headers("events.read"))
    assert response.status_code == 200, response.text


# ---------------------------------------------------------------------------------- key types


async def test_an_ec_issuer_verifies_es_tokens_of_its_curve_only(tmp_path):
    p256, p384 = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP384R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys = validator(tmp_path, public_jwk(p256, "p256"), public_jwk(p384, "p384"))

    good = jwt.encode(claims(), p256, algorithm="ES256", headers={"kid": "p256"})
    assert (await keys.validate(good)).subject == "org:991825827"
    good_384 = jwt.encode(claims(), p384, algorithm="ES384", headers={"kid": "p384"})
    assert (await keys.validate(good_384)).subject == "org:991825827"

    # An RSA signature under the EC key's id, ES384 claimed for the P-256 key, junk EC signatures.
    rsa_under_ec_kid = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "p256"})
    assert "algorithm" in await refused(keys, rsa_under_ec_kid)
    assert "algorithm" in await refused(keys, forged({"alg": "ES384", "kid": "p256"}))
    assert "signature" in await refused(keys, forged({"alg": "ES256", "kid": "p256"}))
    assert "signature" in await refused(keys, forged({"alg": "ES384", "kid": "p384"}, "AAAA"))
    signed_by_another = jwt.encode(claims(), ec.generate_private_key(ec.SECP256R1()), "ES256", {"kid": "p256"})
    assert "signature" in await refused(keys, signed_by_another)


async def test_an_rsa_issuer_verifies_rs_and_ps_tokens_unless_its_key_names_one(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "open").mkdir()
    open_key = validator(tmp_path / "open", public_jwk(key, "k"))
    for algorithm in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"):
        token = jwt.encode(claims(), key, algorithm=algorithm, headers={"kid": "k"})
        assert (await open_key.validate(token)).subject == "org:991825827", algorithm
    for algorithm in ("ES256", "HS256", "none"):
        assert "algorithm" in await refused(open_key, forged({"alg": algorithm, "kid": "k"}))

    (tmp_path / "pinned").mkdir()
    pinned = validator(tmp_path / "pinned", public_jwk(key, "k", alg="RS256"))
    assert "algorithm" in await refused(pinned, jwt.encode(claims(), key, algorithm="PS256", headers={"kid": "k"}))
    assert (await pinned.validate(jwt.encode(claims(), key, "RS256", {"kid": "k"}))).subject == "org:991825827"


async def test_a_symmetric_key_in_the_key_set_verifies_nothing(tmp_path):
    secret = b"s" * 32
    oct_jwk = {"kty": "oct", "k": base64.urlsafe_b64encode(secret).decode().rstrip("="), "kid": "shared"}
    keys = validator(tmp_path, oct_jwk)
    token = jwt.encode(claims(), secret, algorithm="HS256", headers={"kid": "shared"})
    assert "unknown key" in await refused(keys, token)


@pytest.mark.parametrize(
    "odd",
    [{"kty": "EC", "crv": ["P-256"]}, {"kty": "RSA", "alg": ["RS256"]}, {"kty": "EC", "crv": "P-256", "alg": 7}],
)
def test_a_key_with_members_of_the_wrong_type_verifies_nothing_and_breaks_no_other_key(odd):
    from shared.identity.tokens import accepted_algorithms

    assert accepted_algorithms(odd) == frozenset()
    assert accepted_algorithms({"kty": "EC", "crv": "P-256"}) == frozenset({"ES256"})
