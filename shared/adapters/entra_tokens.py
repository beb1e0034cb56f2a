"""Outbound tokens from Microsoft Entra ID: client credentials with msal, for the external systems Herald
calls (the contact registry, the policy decision point); and Herald's own identity's tokens for the
audiences of webhook gateways (``CredentialTokens``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential


class TokenProvider(Protocol):
    async def token(self) -> str: ...


class MsalTokenProvider:
    """Client-credentials tokens from Microsoft Entra ID (or any authority msal accepts), cached by msal."""

    def __init__(
        self,
        *,
        authority: str,
        client_id: str,
        client_secret: str,
        scope: str,
        http_client: Any = None,
        validate_authority: bool = True,
    ) -> None:
        import msal

        self._scope = scope
        self._app = msal.ConfidentialClientApplication(
            client_id,
            client_credential=client_secret,
            authority=authority,
            http_client=http_client,
            validate_authority=validate_authority,
            instance_discovery=validate_authority,
        )

    async def token(self) -> str:
        result: dict[str, Any] = await asyncio.to_thread(self._app.acquire_token_for_client, scopes=[self._scope])
        token = result.get("access_token")
        if not token:
            raise RuntimeError(f"no token for {self._scope}: {result.get('error')}: {result.get('error_description')}")
        return str(token)


def client_credentials(
    *,
    url: str | None,
    authority: str | None,
    client_id: str | None,
    client_secret: str | None,
    scope: str | None,
    needs: str,
) -> tuple[str, MsalTokenProvider]:
    """An external system's URL and a token provider for it, from its client-credentials settings.

    Raises RuntimeError with ``needs`` (the settings it asks for) when any of them is missing."""
    if not (url and authority and client_id and client_secret and scope):
        raise RuntimeError(needs)
    return url, MsalTokenProvider(authority=authority, client_id=client_id, client_secret=client_secret, scope=scope)


class CredentialTokens:
    """Bearer tokens as Herald's own identity, for the audiences webhook gateways name: an azure-identity
    credential (the managed identity in Azure; devhost's issuer locally). Each token is kept until
    ``refresh_seconds`` before it expires, and fetched once however many pushes want it at once."""

    def __init__(self, credential: AsyncTokenCredential, *, refresh_seconds: float = 300.0) -> None:
        self._credential = credential
        self._refresh = refresh_seconds
        self._tokens: dict[str, AccessToken] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _fresh(self, scope: str) -> str | None:
        held = self._tokens.get(scope)
        return held.token if held is not None and held.expires_on - self._refresh > time.time() else None

    async def token(self, scope: str) -> str:
        fresh = self._fresh(scope)
        if fresh is not None:
            return fresh
        async with self._locks.setdefault(scope, asyncio.Lock()):
            fresh = self._fresh(scope)
            if fresh is None:
                self._tokens[scope] = await self._credential.get_token(scope)
                fresh = self._tokens[scope].token
        return fresh

    async def close(self) -> None:
        await self._credential.close()
