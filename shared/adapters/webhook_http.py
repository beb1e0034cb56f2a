"""Outbound webhook HTTP with aiohttp: pooled connections, no redirects, bounded response reads."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Mapping

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from shared.subscriptions.endpoint_policy import forbidden_reason
from shared.subscriptions.ports import WebhookResponse

USER_AGENT = "Herald-Webhooks/1.0"
EXCERPT_BYTES = 2048


class GuardedResolver(AbstractResolver):
    """Resolves as usual, then refuses internal addresses at connection time (DNS rebinding)."""

    def __init__(self, *, allow_loopback: bool, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or ThreadedResolver()
        self._allow_loopback = allow_loopback

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            reason = forbidden_reason(ipaddress.ip_address(result["host"]), allow_loopback=self._allow_loopback)
            if reason is not None:
                raise OSError(f"{host} resolves to {reason}; Herald does not connect there")
        return results

    async def close(self) -> None:
        await self._inner.close()


class AiohttpWebhookClient:
    def __init__(
        self,
        *,
        allow_loopback: bool,
        connections: int = 512,
        per_host: int = 64,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self._connections = connections
        self._per_host = per_host
        self._resolver = GuardedResolver(allow_loopback=allow_loopback, inner=resolver)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # No DNS cache: every connection resolves again, and the guard sees every answer.
            connector = aiohttp.TCPConnector(
                limit=self._connections, limit_per_host=self._per_host, use_dns_cache=False, resolver=self._resolver
            )
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": USER_AGENT}, auto_decompress=False
            )
        return self._session

    async def _request(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str], timeout: float
    ) -> WebhookResponse:
        started = time.perf_counter()
        try:
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
        except aiohttp.ClientConnectorError as failure:
            # Name the cause (for instance the address guard's refusal), not aiohttp's wrapper.
            cause = failure.os_error
            reason = cause.args[0] if cause.args and isinstance(cause.args[0], str) else str(cause) or str(failure)
            error = f"cannot connect: {reason}"[:300]
        except aiohttp.ClientError as failure:
            error = f"{type(failure).__name__}: {failure}"[:300]
        except (OSError, ValueError) as failure:
            error = f"{type(failure).__name__}: {failure}"[:300]
        except asyncio.CancelledError:
            raise
        return WebhookResponse(
            status=None, headers={}, latency_ms=int((time.perf_counter() - started) * 1000), excerpt="", error=error
        )

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> WebhookResponse:
        return await self._request("POST", url, body, headers, timeout)

    async def options(self, url: str, headers: Mapping[str, str], timeout: float) -> WebhookResponse:
        return await self._request("OPTIONS", url, None, headers, timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
