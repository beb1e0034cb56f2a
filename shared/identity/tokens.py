"""Bearer token validation with PyJWT against the configured issuer's signing keys.

In Azure the keys come from the issuer's OpenID Connect metadata (Microsoft Entra ID;
``shared.adapters.openid_keys`` fetches them); locally devhost is the issuer and its public keys are
a JWKS file. An unknown key id triggers one key refresh (key rotation), rate-limited so forged key
ids cannot hammer the issuer. A token is verified only with an algorithm of its key's own type (the JWK's ``alg``, else its ``kty``/``crv``), so a header
naming another family (``ES256`` against an RSA key, ``HS256``, ``none``) is refused as invalid.
The caller's Herald identity is ``sub`` (Herald's own issuer), or, with mapped identities (Entra ID), the
identity ``shared.identity.accounts`` maps the token's account (``tid``, ``oid``) to.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jwt

from shared.identity.accounts import ADMIN_BOOTSTRAP, Account, AccountLookup, unmapped_detail

CLOCK_SKEW_SECONDS = 60
_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
# An EC key signs with the one algorithm of its curve (RFC 7518 section 3.4).
_EC_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
# An unknown key id reloads the keys (rotation), at most this often, so forged key ids cannot hammer the issuer.
MIN_REFRESH_SECONDS = 30.0
_CLIENT_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class TokenInvalid(Exception):
    """The bearer token cannot be trusted; the message says why, without echoing the token."""


@dataclass(frozen=True)
class Principal:
    subject: str
    scopes: frozenset[str]
    claims: Mapping[str, Any]
    # With mapped identities: the account the identity was looked up by.
    account: Account | None = None
    # An administrator whose account is not mapped yet: ADMIN_BOOTSTRAP, on admin routes only.
    bootstrap: bool = False


@dataclass(frozen=True)
class SigningKey:
    """One of the issuer's public keys and the signature algorithms it may verify."""

    key: Any
    algorithms: frozenset[str]


class SigningKeys(Protocol):
    # Set by keys discovered from OpenID Connect metadata: the issuer it names.
    issuer: str | None

    async def key(self, kid: str | None) -> SigningKey: ...


def accepted_algorithms(jwk: Mapping[str, Any]) -> frozenset[str]:
    """The algorithms a JWK may verify: those of its type (``kty``, an EC key's ``crv``), narrowed to
    its ``alg`` when it declares one.

    Symmetric (``oct``) and unknown key types verify nothing: a public key set must never let a token
    be signed with a shared secret, and ``none`` is no key's algorithm.
    """
    kty, crv, declared = jwk.get("kty"), jwk.get("crv"), jwk.get("alg")
    if kty == "RSA":
        family = _RSA_ALGORITHMS
    elif kty == "EC" and isinstance(crv, str) and crv in _EC_ALGORITHMS:
        family = frozenset({_EC_ALGORITHMS[crv]})
    else:
        family = frozenset()
    if declared is None:
        return family
    # A member of the wrong JSON type makes the key verify nothing, never the whole set fail to load.
    return family & {declared} if isinstance(declared, str) else frozenset()


def _jwk_set(document: Mapping[str, Any]) -> dict[str | None, SigningKey]:
    keys: dict[str | None, SigningKey] = {}
    entries = document.get("keys")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        algorithms = accepted_algorithms(entry)
        if not algorithms:
            continue
        try:
            jwk = jwt.PyJWK(entry)
        except jwt.PyJWTError:  # a malformed key is skipped, as PyJWKSet skips it
            continue
        keys[jwk.key_id] = SigningKey(jwk.key, algorithms)
    return keys


class RefreshingKeys:
    """Caches a key set and reloads it when an unknown key id appears (at most every few minutes).

    A source of keys subclasses this and implements ``_load`` (the JWKS document).
    """

    def __init__(self, *, min_refresh_seconds: float = MIN_REFRESH_SECONDS) -> None:
        self._keys: dict[str | None, SigningKey] = {}
        self._loaded_at: float | None = None
        self._min_refresh = min_refresh_seconds
        self._lock = asyncio.Lock()
        self.issuer: str | None = None

    async def _load(self) -> Mapping[str, Any]:
        raise NotImplementedError

    async def key(self, kid: str | None) -> SigningKey:
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            stale = self._loaded_at is None or time.monotonic() - self._loaded_at >= self._min_refresh
            if kid not in self._keys and stale:
                self._keys = _jwk_set(await self._load())
                self._loaded_at = time.monotonic()
        if kid in self._keys:
            return self._keys[kid]
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        raise TokenInvalid("the token is signed with an unknown key")


class JwksFileKeys(RefreshingKeys):
    """devhost's public keys, read from the JWKS file it writes."""

    def __init__(self, path: str | Path, *, min_refresh_seconds: float = 1.0) -> None:
        super().__init__(min_refresh_seconds=min_refresh_seconds)
        self._path = Path(path)

    async def _load(self) -> Mapping[str, Any]:
        try:
            document: Mapping[str, Any] = json.loads(self._path.read_text())
        except FileNotFoundError as error:
            raise TokenInvalid(
                "the local issuer has no keys yet: start devhost or run 'python -m devhost token'"
            ) from error
        return document


def scopes_of(claims: Mapping[str, Any]) -> frozenset[str]:
    """Delegated scopes (``scp``/``scope``, space-separated) and application roles (``roles``)."""
    scopes: set[str] = set()
    for name in ("scp", "scope"):
        value = claims.get(name)
        if isinstance(value, str):
            scopes.update(value.split())
    roles = claims.get("roles")
    if isinstance(roles, list):
        scopes.update(role for role in roles if isinstance(role, str))
    return frozenset(scopes)


def accepted_audiences(audience: str) -> list[str]:
    """The configured audience and, when it is an Entra Application ID URI ``api://<client id>``, that
    client id too: Entra's v2.0 access tokens always name the API by its client id in ``aud``."""
    client_id = audience.removeprefix("api://")
    return [audience, client_id] if client_id != audience and _CLIENT_ID.fullmatch(client_id) else [audience]


class TokenValidator:
    def __init__(
        self, *, issuer: str | None, audience: str, keys: SigningKeys, accounts: AccountLookup | None = None
    ) -> None:
        self._issuer = issuer
        self._audiences = accepted_audiences(audience)
        self._keys = keys
        # None: ``sub`` is the Herald identity. Else the identity is looked up by the token's account.
        self._accounts = accounts

    async def validate(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise TokenInvalid("the bearer token is not a JWT") from error
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenInvalid("the token's key id is not a string")
        signing_key = await self._keys.key(kid)
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in signing_key.algorithms:
            raise TokenInvalid("the token's signing algorithm is not accepted for its key")
        issuer = self._issuer or self._keys.issuer
        if not issuer:
            raise TokenInvalid("no issuer is configured or discovered")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=signing_key.key,
                algorithms=sorted(signing_key.algorithms),
                audience=self._audiences,
                issuer=issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as error:
            raise TokenInvalid("the token has expired") from error
        except jwt.ImmatureSignatureError as error:
            raise TokenInvalid("the token is not valid yet") from error
        except jwt.InvalidAudienceError as error:
            raise TokenInvalid("the token is for another audience") from error
        except jwt.InvalidIssuerError as error:
            raise TokenInvalid("the token is from another issuer") from error
        except jwt.InvalidSignatureError as error:
            raise TokenInvalid("the token's signature does not verify") from error
        except jwt.MissingRequiredClaimError as error:
            raise TokenInvalid(f"the token lacks the '{error.claim}' claim") from error
        except jwt.PyJWTError as error:  # PyJWT's text may quote the token's content; say no more than this
            raise TokenInvalid("the token is malformed or its claims are not valid") from error
        if self._accounts is not None:
            return await self._mapped(claims, self._accounts)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise TokenInvalid("the token has no subject")
        return Principal(subject=subject, scopes=scopes_of(claims), claims=claims)

    @staticmethod
    async def _mapped(claims: Mapping[str, Any], accounts: AccountLookup) -> Principal:
        tenant, object_id = claims.get("tid"), claims.get("oid")
        if not isinstance(tenant, str) or not tenant or not isinstance(object_id, str) or not object_id:
            raise TokenInvalid(
                "the token lacks the 'tid' and 'oid' claims that name the account Herald maps to a Herald identity"
            )
        account = Account.of(tenant, object_id)
        identity = await accounts.identity_of(account)
        if identity is not None:
            return Principal(subject=identity, scopes=scopes_of(claims), claims=claims, account=account)
        # Bootstrap: the app role (``roles``), which only the tenant's administrators assign; never a
        # delegated ``scp``, which a consent can put in every user's token.
        roles = claims.get("roles")
        if isinstance(roles, list) and "admin" in roles:
            return Principal(
                subject=ADMIN_BOOTSTRAP, scopes=frozenset({"admin"}), claims=claims, account=account, bootstrap=True
            )
        raise TokenInvalid(unmapped_detail(account))
