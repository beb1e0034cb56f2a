"""Signing keys discovered from an issuer's OpenID Connect metadata over HTTP (Microsoft Entra ID)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from shared.identity.tokens import MIN_REFRESH_SECONDS, RefreshingKeys


class OpenIdKeys(RefreshingKeys):
    """Keys discovered from OpenID Connect metadata (``jwks_uri``), e.g. Microsoft Entra ID."""

    def __init__(self, metadata_url: str, *, min_refresh_seconds: float = MIN_REFRESH_SECONDS) -> None:
        super().__init__(min_refresh_seconds=min_refresh_seconds)
        self._metadata_url = metadata_url

    async def _load(self) -> Mapping[str, Any]:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(self._metadata_url) as response:
                response.raise_for_status()
                metadata = await response.json(content_type=None)
            self.issuer = metadata.get("issuer")  # the issuer to expect when none is configured
            async with session.get(metadata["jwks_uri"]) as response:
                response.raise_for_status()
                keys: Mapping[str, Any] = await response.json(content_type=None)
                return keys
