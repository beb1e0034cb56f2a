"""The local token issuer: an RSA key kept in devhost's state directory and RS256 tokens signed with it.

In local mode Herald validates tokens against the ``jwks.json`` written here, so developers and
end-to-end tests get real, verifiable bearer tokens without an identity provider.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from devhost.state import default_state_dir, write_private
from shared.adapters.local_issuer import key_id, load_private_key

KEY_FILE = "issuer-key.pem"
JWKS_FILE = "jwks.json"
DEFAULT_ISSUER = "http://127.0.0.1:7071/devhost"
DEFAULT_AUDIENCE = "api://herald"


def _load_or_create_key(state_dir: Path) -> rsa.RSAPrivateKey:
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_path = state_dir / KEY_FILE
    if key_path.exists():
        return load_private_key(key_path)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    if not write_private(key_path, pem):
        return _load_or_create_key(state_dir)
    return key


def _jwks_document(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    public = key.public_key()
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(public, as_dict=True)
    jwk.update({"kid": key_id(public), "use": "sig", "alg": "RS256"})
    return {"keys": [jwk]}


def ensure_issuer_keys(state_dir: Path | str | None = None) -> Path:
    """Create the signing key and ``jwks.json`` on first use; return the jwks path."""
    directory = Path(state_dir) if state_dir is not None else default_state_dir()
    _ensure_key(directory)
    return directory / JWKS_FILE


def _ensure_key(directory: Path) -> rsa.RSAPrivateKey:
    """The signing key, with ``jwks.json`` brought in line with it. Loading an RSA key is slow (its
    consistency check), so callers load it once."""
    key = _load_or_create_key(directory)
    jwks_path = directory / JWKS_FILE
    document = _jwks_document(key)
    if not jwks_path.exists() or json.loads(jwks_path.read_text(encoding="utf-8")) != document:
        jwks_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return key


def issue_token(
    sub: str,
    scopes: Sequence[str],
    *,
    ttl: int = 3600,
    audience: str | None = None,
    issuer: str | None = None,
    state_dir: Path | str | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    """Sign an RS256 access token with the local key; defaults follow ``HERALD_AUTH_*`` settings."""
    directory = Path(state_dir) if state_dir is not None else default_state_dir()
    key = _ensure_key(directory)
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer or os.environ.get("HERALD_AUTH_ISSUER") or DEFAULT_ISSUER,
        "aud": audience or os.environ.get("HERALD_AUTH_AUDIENCE") or DEFAULT_AUDIENCE,
        "sub": sub,
        "scp": " ".join(scope for scope in scopes if scope),
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": str(uuid.uuid4()),
    }
    if extra_claims:
        claims.update(extra_claims)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": key_id(key.public_key()), "typ": "JWT"})


def split_scopes(values: Sequence[str]) -> list[str]:
    """Accept ``--scope "a b"`` as well as repeated ``--scope a --scope b``."""
    return [scope for value in values for scope in value.replace(",", " ").split()]
