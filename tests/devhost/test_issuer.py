"""The local issuer: tokens verify with PyJWT against the jwks.json devhost writes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from devhost.issuer import ensure_issuer_keys, issue_token

REPO_ROOT = Path(__file__).resolve().parents[2]


def verify(token: str, jwks_path: Path, audience: str = "api://herald") -> dict[str, object]:
    jwks = jwt.PyJWKSet.from_dict(json.loads(jwks_path.read_text()))
    header = jwt.get_unverified_header(token)
    [key] = [k for k in jwks.keys if k.key_id == header["kid"]]
    claims: dict[str, object] = jwt.decode(token, key.key, algorithms=["RS256"], audience=audience)
    return claims


def test_keys_are_created_once_and_private_key_is_owner_only(tmp_path: Path) -> None:
    state = tmp_path / "state"
    jwks_path = ensure_issuer_keys(state)
    key_mode = stat.S_IMODE(os.stat(state / "issuer-key.pem").st_mode)
    assert jwks_path == state / "jwks.json"
    assert key_mode == 0o600
    first = jwks_path.read_text()
    assert ensure_issuer_keys(state).read_text() == first  # stable: same key, same kid
    [jwk] = json.loads(first)["keys"]
    assert jwk["kty"] == "RSA" and jwk["kid"] and "d" not in jwk


def test_issued_token_verifies_against_jwks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HERALD_AUTH_ISSUER", raising=False)
    monkeypatch.delenv("HERALD_AUTH_AUDIENCE", raising=False)
    token = issue_token("org:991825827", ["events.publish", "events.read"], ttl=600, state_dir=tmp_path)
    claims = verify(token, ensure_issuer_keys(tmp_path))
    assert claims["iss"] == "http://127.0.0.1:7071/devhost"
    assert claims["sub"] == "org:991825827"
    assert claims["scp"] == "events.publish events.read"
    assert claims["exp"] == claims["iat"] + 600  # type: ignore[operator]
    assert claims["nbf"] == claims["iat"]
    assert claims["jti"]


def test_issuer_and_audience_follow_settings_and_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_AUTH_ISSUER", "http://issuer.example")
    monkeypatch.setenv("HERALD_AUTH_AUDIENCE", "api://from-env")
    from_env = verify(issue_token("a", ["x"], state_dir=tmp_path), tmp_path / "jwks.json", "api://from-env")
    assert from_env["iss"] == "http://issuer.example"
    explicit = issue_token(
        "a", ["x"], state_dir=tmp_path, audience="api://other", issuer="i", extra_claims={"tid": "t"}
    )
    claims = verify(explicit, tmp_path / "jwks.json", "api://other")
    assert (claims["iss"], claims["tid"]) == ("i", "t")


def test_token_cli_prints_a_verifiable_token(tmp_path: Path) -> None:
    env = {**os.environ, "HERALD_DEVHOST_STATE": str(tmp_path)}
    env.pop("HERALD_AUTH_AUDIENCE", None)
    result = subprocess.run(
        [sys.executable, "-m", "devhost", "token", "--sub", "org:991825827", "--scope", "events.publish events.read",
         "--ttl", "120", "--aud", "api://herald"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    claims = verify(result.stdout.strip(), tmp_path / "jwks.json")
    assert claims["scp"] == "events.publish events.read"
    assert claims["exp"] == claims["iat"] + 120  # type: ignore[operator]


async def test_herald_signs_its_own_tokens_with_the_key_devhost_publishes(tmp_path: Path) -> None:
    # Herald's local identity (what the managed identity is in Azure) and devhost's JWKS read one key file
    # and name it by one kid, so a receiver that trusts devhost's issuer trusts Herald's tokens.
    from shared.adapters.local_issuer import LocalIssuerCredential

    jwks_path = ensure_issuer_keys(tmp_path)
    credential = LocalIssuerCredential(tmp_path / "issuer-key.pem", "http://issuer.example")
    token = await credential.get_token("api://receiver/.default")
    claims = verify(token.token, jwks_path, "api://receiver")
    assert (claims["iss"], claims["sub"]) == ("http://issuer.example", "system:herald")
