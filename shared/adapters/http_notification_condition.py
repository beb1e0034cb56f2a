"""The send condition: ``GET conditionEndpoint`` answers ``{"sendNotification": true|false}``.

The URL is the orderer's, so it gets the webhooks' protection: the endpoint policy checked it when
the order was placed, its form is checked again here, and the guarded connector refuses internal
addresses at connection time and never follows a redirect.
"""

from __future__ import annotations

import json
import logging

import aiohttp
from aiohttp.abc import AbstractResolver

from shared.adapters.guarded_http import guarded_session
from shared.endpoint_policy import EndpointPolicy, EndpointRefused

log = logging.getLogger(__name__)

USER_AGENT = "Herald-Notifications/1.0"
MAX_ANSWER_BYTES = 64 * 1024  # an answer is one small JSON object


class HttpConditionChecker:
    def __init__(
        self, *, endpoints: EndpointPolicy, timeout: float = 10.0, resolver: AbstractResolver | None = None
    ) -> None:
        self._endpoints = endpoints
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._resolver = resolver

    async def check(self, url: str) -> bool | None:
        try:
            # An order stored before a policy change, or a literal address (never resolved): check again.
            self._endpoints.check_form(url, field="conditionEndpoint")
            async with (
                guarded_session(
                    allow_loopback=self._endpoints.allows_loopback,
                    resolver=self._resolver,
                    headers={"User-Agent": USER_AGENT},
                ) as session,
                session.get(
                    url, headers={"Accept": "application/json"}, allow_redirects=False, timeout=self._timeout
                ) as response,
            ):
                if response.status != 200:
                    log.warning("condition endpoint answered %s", response.status, extra={"url": url})
                    return None
                answer = await response.content.read(MAX_ANSWER_BYTES + 1)
            if len(answer) > MAX_ANSWER_BYTES:
                log.warning("condition endpoint answered more than %s bytes", MAX_ANSWER_BYTES, extra={"url": url})
                return None
            document = json.loads(answer)
        except (EndpointRefused, aiohttp.ClientError, OSError, TimeoutError, ValueError) as error:
            log.warning("condition endpoint failed: %s", error, extra={"url": url})
            return None
        value = document.get("sendNotification") if isinstance(document, dict) else None
        return value if isinstance(value, bool) else None
