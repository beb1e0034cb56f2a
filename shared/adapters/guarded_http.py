"""The guarded connector: every connection Herald opens to a URL a caller gave it goes through here.

Webhook deliveries and notification condition checks share it. Each connection resolves the host
again (no DNS cache) and refuses internal addresses by ``EndpointPolicy``'s rule, so a name that
passed the check when the caller gave it but now resolves inside (DNS rebinding) is refused; callers
request with ``allow_redirects=False``, since a redirect could lead anywhere. A host that is an address
is never resolved, so the guard checks it as each request starts (a subscription stored before a rule
was added, or under local mode, must not reach what the rule now forbids). A refusal raises
``AddressRefused`` (an ``OSError``), which names the reason.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Mapping
from functools import lru_cache
from types import SimpleNamespace

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from shared.endpoint_policy import AddressRefused, refuse_internal


class GuardedResolver(AbstractResolver):
    """Resolves as usual, then refuses internal addresses at connection time (DNS rebinding)."""

    def __init__(self, *, allow_loopback: bool, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or ThreadedResolver()
        self._allow_loopback = allow_loopback

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        refuse_internal(
            host, [ipaddress.ip_address(result["host"]) for result in results], allow_loopback=self._allow_loopback
        )
        return results

    async def close(self) -> None:
        await self._inner.close()


def guarded_session(
    *,
    allow_loopback: bool,
    resolver: AbstractResolver | None = None,
    connections: int = 100,
    per_host: int = 0,
    headers: Mapping[str, str] | None = None,
    decompress: bool = True,
    literal_hosts: bool = True,
) -> aiohttp.ClientSession:
    """A client session whose every connection passes the address guard. ``literal_hosts=False``: the
    caller checks a host that is an address itself (``refuse_literal_host``) before each request,
    sparing the request-trace machinery aiohttp runs on every request once any hook is set."""
    # No DNS cache: every connection resolves again, and the guard sees every answer.
    connector = aiohttp.TCPConnector(
        limit=connections,
        limit_per_host=per_host,
        use_dns_cache=False,
        resolver=GuardedResolver(allow_loopback=allow_loopback, inner=resolver),
    )
    traces = []
    if literal_hosts:
        traces.append(aiohttp.TraceConfig())
        traces[0].on_request_start.append(_literal_host_guard(allow_loopback))
    return aiohttp.ClientSession(
        connector=connector,
        headers=dict(headers or {}),
        auto_decompress=decompress,
        trace_configs=traces,
    )


@lru_cache(maxsize=4096)
def _literal_refusal(url: str, allow_loopback: bool) -> str | None:
    try:
        host = URL(url).host or ""
    except ValueError:
        return None  # not a URL: the request itself says so
    try:
        refuse_literal(host, allow_loopback=allow_loopback)
    except AddressRefused as refusal:
        return str(refusal)
    return None


def refuse_literal_host(url: str, *, allow_loopback: bool) -> None:
    """The guard for a host that is an address (no resolver sees it), for a request about to start:
    raises ``AddressRefused``. The verdict depends on the URL alone, so it is remembered per URL."""
    reason = _literal_refusal(url, allow_loopback)
    if reason is not None:
        raise AddressRefused(reason)


def refuse_literal(host: str, *, allow_loopback: bool) -> None:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return  # a name: the resolver checks what it resolves to
    refuse_internal(host, [address], allow_loopback=allow_loopback, literal=True)


def _literal_host_guard(
    allow_loopback: bool,
) -> Callable[[aiohttp.ClientSession, SimpleNamespace, aiohttp.TraceRequestStartParams], Awaitable[None]]:
    """An ``on_request_start`` hook: the guard for a host that is an address, which no resolver sees."""

    async def check(
        _session: aiohttp.ClientSession, _context: SimpleNamespace, params: aiohttp.TraceRequestStartParams
    ) -> None:
        refuse_literal(params.url.host or "", allow_loopback=allow_loopback)

    return check
