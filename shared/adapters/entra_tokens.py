"""Outbound tokens from Microsoft Entra ID (client credentials, with msal), for the external
systems Herald calls: the contact registry and the policy decision point."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol


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
