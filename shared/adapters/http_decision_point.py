"""An external policy decision point over HTTP, with an Entra ID client-credentials token.

Contract (Herald's; a PDP or a thin facade in front of one implements it):
``POST {url}`` ``{"requests": [{"consumer", "resource", "subject", "type", "action"}, ...]}`` ->
``{"decisions": [true | false, ...]}`` in the same order. Herald sends up to 100 requests a call.

When the PDP cannot answer, Herald does not guess: the call fails, the read answers 503 and the
push is retried, so no event is skipped or sent on a decision nobody made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import aiohttp

from shared.adapters.entra_tokens import TokenProvider, client_credentials
from shared.config import Settings
from shared.identity.authorization import AccessRequest, DecisionUnavailable

BATCH = 100


class DecisionPointUnavailable(DecisionUnavailable):
    pass


class HttpDecisionPoint:
    def __init__(self, url: str, tokens: TokenProvider, *, timeout_seconds: float = 5.0, ssl: Any = None) -> None:
        self._url = url
        self._tokens = tokens
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._ssl = ssl

    @classmethod
    def from_settings(cls, config: Settings) -> HttpDecisionPoint:
        url, tokens = client_credentials(
            url=config.pdp_url,
            authority=config.pdp_authority,
            client_id=config.pdp_client_id,
            client_secret=config.pdp_client_secret,
            scope=config.pdp_scope,
            needs="HERALD_AUTHORIZATION=pdp needs HERALD_PDP_URL, _AUTHORITY, _CLIENT_ID, _CLIENT_SECRET and _SCOPE",
        )
        return cls(url, tokens)

    async def decide(self, requests: Sequence[AccessRequest]) -> list[bool]:
        token = await self._tokens.token()
        async with aiohttp.ClientSession(timeout=self._timeout) as session:
            chunks = [requests[i : i + BATCH] for i in range(0, len(requests), BATCH)]
            answers = await asyncio.gather(*(self._ask(session, token, chunk) for chunk in chunks))
        return [decision for chunk in answers for decision in chunk]

    async def _ask(self, session: aiohttp.ClientSession, token: str, chunk: Sequence[AccessRequest]) -> list[bool]:
        body = {
            "requests": [
                {
                    "consumer": r.consumer,
                    "resource": r.resource,
                    "subject": r.subject,
                    "type": r.type,
                    "action": r.action.value,
                }
                for r in chunk
            ]
        }
        try:
            async with session.post(
                self._url, json=body, headers={"Authorization": f"Bearer {token}"}, ssl=self._ssl
            ) as response:
                if response.status != 200:
                    raise DecisionPointUnavailable(f"the policy decision point answered {response.status}")
                document = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise DecisionPointUnavailable(f"the policy decision point did not answer: {error}") from error
        decisions = document.get("decisions") if isinstance(document, dict) else None
        if (
            not isinstance(decisions, list)
            or len(decisions) != len(chunk)
            or not all(isinstance(d, bool) for d in decisions)
        ):
            raise DecisionPointUnavailable("the policy decision point's answer does not match the requests")
        return decisions
