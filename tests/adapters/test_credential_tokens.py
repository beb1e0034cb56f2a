"""Herald's own tokens for webhook gateways (entra_tokens.CredentialTokens): asked for once however many
pushes want one at once, kept until shortly before they expire. The credential stands in for
azure-identity's managed identity credential at its ``get_token`` interface."""

from __future__ import annotations

import asyncio
import time

from azure.core.credentials import AccessToken

from shared.adapters.entra_tokens import CredentialTokens


class Credential:
    def __init__(self, lifetime: int) -> None:
        self.lifetime = lifetime
        self.asked: list[str] = []

    async def get_token(self, *scopes: str, **_: object) -> AccessToken:
        self.asked.append(scopes[0])
        await asyncio.sleep(0.01)  # Entra ID takes a moment to answer
        return AccessToken(f"token-{len(self.asked)}", int(time.time()) + self.lifetime)

    async def close(self) -> None:
        pass


async def test_concurrent_pushes_share_one_token_per_scope_until_it_nears_expiry():
    credential = Credential(lifetime=3600)
    tokens = CredentialTokens(credential)  # type: ignore[arg-type]
    got = await asyncio.gather(*(tokens.token("api://gateway/.default") for _ in range(50)))
    assert set(got) == {"token-1"} and credential.asked == ["api://gateway/.default"]
    assert await tokens.token("api://other/.default") == "token-2"

    expiring = Credential(lifetime=120)  # within the five minutes before expiry: asked for again
    tokens = CredentialTokens(expiring)  # type: ignore[arg-type]
    assert [await tokens.token("api://gateway/.default") for _ in range(2)] == ["token-1", "token-2"]
