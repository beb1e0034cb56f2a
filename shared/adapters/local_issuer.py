"""devhost's token issuer as Herald's own identity, locally: what Entra ID and the managed identity are
in Azure.

devhost keeps its issuer's RSA key in its state folder and points ``HERALD_LOCAL_ISSUER_KEY_PATH`` at
it. Herald signs its own tokens with that key (RS256, ``iss`` the issuer, ``sub`` Herald, ``aud`` the
audience asked for, an hour), so a receiver verifies them against devhost's JWKS as it would verify
Entra ID's tokens against the tenant's. Only in local mode: in Azure the managed identity asks Entra ID.
It is an azure-core ``AsyncTokenCredential``, so the Event Grid client authenticates with it as it
does with the managed identity.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

HERALD_SUBJECT = "system:herald"
DEFAULT_SUFFIX = "/.default"


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def key_id(public_key: rsa.RSAPublicKey) -> str:
    """The RFC 7638 thumbprint: the ``kid`` devhost's JWKS gives the key."""
    numbers = public_key.public_numbers()
    canonical = json.dumps(
        {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}, separators=(",", ":")
    )
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode("ascii")


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    """The issuer's RSA key from its PEM file (devhost writes it; Herald signs with it)."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    return key


class LocalIssuerCredential:
    def __init__(
        self, key_path: Path | str, issuer: str, *, subject: str = HERALD_SUBJECT, ttl_seconds: int = 3600
    ) -> None:
        self._key_path = Path(key_path)
        self._issuer = issuer
        self._subject = subject
        self._ttl = ttl_seconds
        self._key: rsa.RSAPrivateKey | None = None

    def _signing_key(self) -> rsa.RSAPrivateKey:
        if self._key is None:
            self._key = load_private_key(self._key_path)
        return self._key

    def _sign(self, scopes: tuple[str, ...]) -> AccessToken:
        if len(scopes) != 1:
            raise ValueError("one scope per token")
        scope = scopes[0]
        audience = scope[: -len(DEFAULT_SUFFIX)] if scope.endswith(DEFAULT_SUFFIX) else scope
        key = self._signing_key()
        now = int(time.time())
        claims = {
            "iss": self._issuer,
            "aud": audience,
            "sub": self._subject,
            "azp": self._subject,
            "iat": now,
            "nbf": now,
            "exp": now + self._ttl,
            "jti": str(uuid.uuid4()),
        }
        token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": key_id(key.public_key()), "typ": "JWT"})
        return AccessToken(token, now + self._ttl)

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        return await asyncio.to_thread(self._sign, scopes)  # reads a file, signs with RSA: off the loop

    async def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        token = await self.get_token(*scopes)
        return AccessTokenInfo(token.token, token.expires_on)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> LocalIssuerCredential:
        return self

    async def __aexit__(self, *args: object) -> None:
        return None
