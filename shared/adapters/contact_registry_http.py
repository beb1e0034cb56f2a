"""A contact registry reached over HTTP with an OAuth client-credentials token (msal).

Contract (Herald's; an external registry or a thin facade in front of one implements it):

- ``POST {base}/persons/lookup`` ``{"nationalIdentityNumbers": [...]}`` ->
  ``{"persons": [{"nationalIdentityNumber", "name", "emailAddress", "mobileNumber", "reserved"}]}``
- ``POST {base}/organizations/lookup`` ``{"organizationNumbers": [...]}`` ->
  ``{"organizations": [{"organizationNumber", "name", "emailAddresses", "mobileNumbers", "roles",
  "parentOrganizationNumber"}]}``; ``parentOrganizationNumber`` (optional) is a subunit's main unit, which
  subscriptions with ``includeSubunits`` are matched through. An organisation left out of the answer is
  unknown (no contact points, no main unit).

Each call carries ``Authorization: Bearer <token>`` from a :class:`TokenProvider`.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Any

import aiohttp

from shared.adapters.entra_tokens import TokenProvider, client_credentials
from shared.notifications.config import NotificationSettings
from shared.notifications.ports import Organization, Person

LOOKUP_CHUNK = 500


class HttpContactRegistry:
    def __init__(
        self, base_url: str, tokens: TokenProvider, *, timeout: float = 15.0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._ssl = ssl_context
        self._base = base_url.rstrip("/")
        self._tokens = tokens
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    @classmethod
    def from_settings(cls, settings: NotificationSettings) -> HttpContactRegistry:
        """The registry at HERALD_CONTACT_REGISTRY_URL, with a client-credentials token from its authority."""
        url, tokens = client_credentials(
            url=settings.registry_url,
            authority=settings.registry_authority,
            client_id=settings.registry_client_id,
            client_secret=settings.registry_client_secret,
            scope=settings.registry_scope,
            needs="the HTTP contact registry needs HERALD_CONTACT_REGISTRY_AUTHORITY, _CLIENT_ID, _CLIENT_SECRET, _SCOPE",
        )
        return cls(url, tokens)

    async def _lookup(self, path: str, field: str, keys: Sequence[str], result_field: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        headers = {"Authorization": f"Bearer {await self._tokens.token()}"}
        connector = aiohttp.TCPConnector(ssl=self._ssl) if self._ssl is not None else None
        async with aiohttp.ClientSession(timeout=self._timeout, connector=connector) as session:
            for start in range(0, len(keys), LOOKUP_CHUNK):
                chunk = list(keys[start : start + LOOKUP_CHUNK])
                async with session.post(f"{self._base}{path}", json={field: chunk}, headers=headers) as response:
                    response.raise_for_status()
                    document = await response.json()
                found.extend(document.get(result_field) or [])
        return found

    async def persons(self, nins: Sequence[str]) -> dict[str, Person]:
        rows = await self._lookup("/persons/lookup", "nationalIdentityNumbers", nins, "persons")
        return {p.national_identity_number: p for p in map(Person.from_json, rows)}

    async def organizations(self, numbers: Sequence[str]) -> dict[str, Organization]:
        rows = await self._lookup("/organizations/lookup", "organizationNumbers", numbers, "organizations")
        return {o.organization_number: o for o in map(Organization.from_json, rows)}
