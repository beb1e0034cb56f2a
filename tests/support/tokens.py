"""A test issuer: generated RSA keys, a JWKS file, and tokens (good and deliberately broken)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "http://127.0.0.1:7071/devhost"
AUDIENCE = "api://herald"


class TestIssuer:
    __test__ = False

    def __init__(self, directory: Path, kid: str = "test-key") -> None:
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwks_path = directory / "jwks.json"
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        public.update({"kid": kid, "use": "sig", "alg": "RS256"})
        self.jwks_path.write_text(json.dumps({"keys": [public]}))
        # As devhost keeps its issuer's key: Herald signs its own outbound tokens with it locally.
        self.key_path = directory / "issuer-key.pem"
        self.key_path.write_bytes(
            self.key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    def token(
        self,
        sub: str = "org:991825827",
        scopes: Iterable[str] = ("events.publish", "events.read"),
        *,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
        lifetime: int = 3600,
        not_before: int | None = None,
        key: Any = None,
        kid: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer,
            "aud": audience,
            "sub": sub,
            "scp": " ".join(scopes),
            "iat": now,
            "nbf": now if not_before is None else not_before,
            "exp": now + lifetime,
            "jti": str(uuid.uuid4()),
        }
        claims.update(extra or {})
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})

    def headers(self, *scopes: str, sub: str = "org:991825827") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub, scopes or ('events.publish', 'events.read'))}"}
