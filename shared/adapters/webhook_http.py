"""Outbound webhook HTTP with aiohttp: the guarded connector, pooled connections, no redirects, bounded
response reads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import aiohttp
from aiohttp.abc import AbstractResolver

from shared.adapters.guarded_http import guarded_session, refuse_literal_host
from shared.endpoint_policy import AddressRefused
from shared.subscriptions.ports import WebhookResponse

USER_AGENT = "Herald-Webhooks/1.0"
EXCERPT_BYTES = 2048


class AiohttpWebhookClient:
    def __init__(
        self,
        *,
        allow_loopback: bool,
        connections: int = 4096,
        per_host: int = 0,
        resolver: AbstractResolver | None = None,
    ) -> None:
        """No cap per host and a total above what the endpoint guard admits: the guard caps each
        endpoint and each host, and a request it admitted must never wait here for a connection.
        With 64 per host here, endpoints sharing a host (twenty paths of one receiver) queued behind
        each other, their waits counted against the guard's patience, and healthy endpoints were cut,
        retried and their circuits opened under a burst."""
        self._connections = connections
        self._per_host = per_host
        self._allow_loopback = allow_loopback
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = guarded_session(
                allow_loopback=self._allow_loopback,
                resolver=self._resolver,
                connections=self._connections,
                per_host=self._per_host,
                headers={"User-Agent": USER_AGENT},
                decompress=False,
                literal_hosts=False,  # checked in _request, without aiohttp's per-request trace signals
            )
        return self._session

    async def _request(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str], timeout: float
    ) -> WebhookResponse:
        started = time.perf_counter()
        refused: str | None = None
        try:
            refuse_literal_host(url, allow_loopback=self._allow_loopback)
            async with self._client().request(
                method,
                url,
                data=body,
                headers=dict(headers),
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                excerpt = await response.content.read(EXCERPT_BYTES)
                return WebhookResponse(
                    status=response.status,
                    headers=dict(response.headers.items()),
                    latency_ms=int((time.perf_counter() - started) * 1000),
                    excerpt=excerpt.decode("utf-8", errors="replace"),
                )
        except TimeoutError:
            error = f"no answer within {timeout:g} s"
        except AddressRefused as refusal:  # a host that is an address, refused as the request started
            refused = str(refusal)
            error = f"cannot connect: {refused}"[:300]
        except aiohttp.ClientConnectorError as failure:
            # Name the cause (for instance the address guard's refusal), not aiohttp's wrapper.
            cause = failure.os_error
            reason = cause.args[0] if cause.args and isinstance(cause.args[0], str) else str(cause) or str(failure)
            refused = reason if isinstance(cause, AddressRefused) else None
            error = f"cannot connect: {reason}"[:300]
        except aiohttp.ClientError as failure:
            error = f"{type(failure).__name__}: {failure}"[:300]
        except (OSError, ValueError) as failure:
            error = f"{type(failure).__name__}: {failure}"[:300]
        except asyncio.CancelledError:
            raise
        return WebhookResponse(
            status=None,
            headers={},
            latency_ms=int((time.perf_counter() - started) * 1000),
            excerpt="",
            error=error,
            refused=refused,
        )

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> WebhookResponse:
        return await self._request("POST", url, body, headers, timeout)

    async def options(self, url: str, headers: Mapping[str, str], timeout: float) -> WebhookResponse:
        return await self._request("OPTIONS", url, None, headers, timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
