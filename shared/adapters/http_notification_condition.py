"""The send condition: ``GET conditionEndpoint`` answers ``{"sendNotification": true|false}``."""

from __future__ import annotations

import logging

import aiohttp

log = logging.getLogger(__name__)


class HttpConditionChecker:
    def __init__(self, *, timeout: float = 10.0) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def check(self, url: str) -> bool | None:
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.get(url, headers={"Accept": "application/json"}) as response,
            ):
                if response.status != 200:
                    log.warning("condition endpoint answered %s", response.status, extra={"url": url})
                    return None
                document = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            log.warning("condition endpoint failed: %s", error, extra={"url": url})
            return None
        value = document.get("sendNotification") if isinstance(document, dict) else None
        return value if isinstance(value, bool) else None
