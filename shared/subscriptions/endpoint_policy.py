"""Which webhook endpoints Herald pushes to: https, and never to internal addresses.

An endpoint is refused when its host is, or resolves to, a loopback, private, link-local,
carrier-grade NAT, multicast, reserved or cloud-metadata address (IPv4-mapped and NAT64 IPv6
forms included). The check runs when a subscription is created and again at every connection
(the webhook client's resolver applies the same rule), so a name that later resolves to an
internal address (DNS rebinding) is refused too. Local mode allows plain http to loopback only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Protocol
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_EXTRA_FORBIDDEN = [
    ipaddress.ip_network(network)
    for network in (
        "100.64.0.0/10",  # carrier-grade NAT (includes Alibaba's metadata 100.100.100.200)
        "168.63.129.16/32",  # Azure's wire server (platform metadata)
        "192.0.0.0/24",
        "198.18.0.0/15",
    )
]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class EndpointRefused(ValueError):
    """The endpoint URL is not one Herald will push to."""


def forbidden_reason(address: IPAddress, *, allow_loopback: bool) -> str | None:
    """Why Herald must not connect to this address, or None."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return forbidden_reason(embedded, allow_loopback=allow_loopback)
    if address.is_loopback:
        return None if allow_loopback else "a loopback address"
    if address.is_link_local:
        return "a link-local address (cloud metadata services live there)"
    if address.is_unspecified or address.is_multicast or address.is_reserved:
        return "a reserved address"
    if address.is_private or any(address in network for network in _EXTRA_FORBIDDEN):
        return "a private address"
    return None


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _literal_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return _unmapped(ipaddress.ip_address(host.strip("[]"))).is_loopback
    except ValueError:
        return False


class Resolver(Protocol):
    async def resolve(self, host: str) -> list[str]: ...


class SystemResolver:
    async def resolve(self, host: str) -> list[str]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        return sorted({str(info[4][0]) for info in infos})


class EndpointPolicy:
    def __init__(self, *, local_mode: bool, resolver: Resolver | None = None) -> None:
        self._local = local_mode
        self._resolver = resolver or SystemResolver()

    async def check(self, url: str) -> None:
        parts = urlsplit(url)
        host = parts.hostname or ""
        # Plain http only to a literal loopback host in local mode; a name is not resolved for it.
        if parts.scheme != "https" and not (self._local and _literal_loopback(host)):
            if self._local:
                raise EndpointRefused(
                    "endPoint must be https (plain http is allowed only for loopback addresses in local mode)"
                )
            raise EndpointRefused("endPoint must be an https URL")
        for address in await self._addresses(host):
            reason = forbidden_reason(address, allow_loopback=self._local)
            if reason is not None:
                raise EndpointRefused(f"endPoint {host} is {reason}; Herald pushes only to public endpoints")

    async def _addresses(self, host: str) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            pass
        if host.lower() == "localhost":
            return [ipaddress.ip_address("127.0.0.1")]
        try:
            resolved = await self._resolver.resolve(host)
        except OSError as error:
            raise EndpointRefused(f"endPoint host {host} does not resolve") from error
        if not resolved:
            raise EndpointRefused(f"endPoint host {host} does not resolve")
        return [ipaddress.ip_address(a.split("%")[0]) for a in resolved]
