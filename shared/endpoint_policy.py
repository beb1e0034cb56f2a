"""Which URLs taken from callers Herald connects to: https, and never internal addresses.

One policy for every such URL: webhook endpoints and notification condition endpoints alike.

An endpoint is refused when its host is, or resolves to, a loopback, private, link-local,
carrier-grade NAT, multicast, reserved, site-local or cloud-metadata address, or an IPv6 address that
carries such an IPv4 address (IPv4-mapped, NAT64, 6to4 and Teredo forms). The check runs when a
caller names the URL (a subscription or an order is created) and again at every connection (the
guarded connector's resolver, ``shared/adapters/guarded_http.py``, applies the same rule), so a
name that later resolves to an internal address (DNS rebinding) is refused too, and redirects are
never followed. Local mode allows plain http to loopback only.
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
    """The URL is not one Herald will connect to; ``reason`` says why, after the field's name."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field = field
        self.reason = reason


class AddressRefused(OSError):
    """The connection guard's refusal: the host is, or resolved to, an address Herald must not reach.
    Nothing was sent, and a retry would meet the same rule; the message says why."""


def refuse_internal(host: str, addresses: list[IPAddress], *, allow_loopback: bool, literal: bool = False) -> None:
    """The connection-time rule: raise ``AddressRefused`` when any address of the host is forbidden."""
    for address in addresses:
        reason = forbidden_reason(address, allow_loopback=allow_loopback)
        if reason is not None:
            verb = "is" if literal else "resolves to"
            raise AddressRefused(f"{host} {verb} {reason}; Herald does not connect there")


def _tunnelled_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses a 6to4 (``2002::/16``) or Teredo (``2001::/32``) address leads to: a relay
    delivers its packets there, so it reaches whatever they are."""
    found = [address.sixtofour] if address.sixtofour is not None else []
    if address.teredo is not None:
        found.extend(address.teredo)  # (server, client), the client already de-obfuscated
    return found


def forbidden_reason(address: IPAddress, *, allow_loopback: bool) -> str | None:
    """Why Herald must not connect to this address, or None."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return forbidden_reason(embedded, allow_loopback=allow_loopback)
        for tunnelled in _tunnelled_ipv4(address):
            # Never loopback: through a tunnel it would be some relay's loopback, not this host's.
            reason = forbidden_reason(tunnelled, allow_loopback=False)
            if reason is not None:
                return f"a 6to4 or Teredo address leading to {tunnelled}, {reason}"
        if address.is_site_local:
            return "a site-local address (fec0::/10, private by its deprecated definition)"
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
    literal = _literal_address(host)
    return literal is not None and _unmapped(literal).is_loopback


class Resolver(Protocol):
    async def resolve(self, host: str) -> list[str]: ...


class SystemResolver:
    async def resolve(self, host: str) -> list[str]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        return sorted({str(info[4][0]) for info in infos})


class EndpointPolicy:
    """The one rule for every URL Herald connects to on a caller's behalf (webhook endpoints,
    notification condition endpoints). ``field`` names the request field in refusals."""

    def __init__(self, *, local_mode: bool, resolver: Resolver | None = None) -> None:
        self._local = local_mode
        self._resolver = resolver or SystemResolver()

    @property
    def allows_loopback(self) -> bool:
        return self._local

    def check_form(self, url: str, *, field: str = "endPoint") -> IPAddress | None:
        """The checks that need no DNS: the scheme, and a literal address host (connectors do not
        resolve those, so the connection-time guard never sees them). Returns that literal address."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        # Plain http only to a literal loopback host in local mode; a name is not resolved for it.
        if parts.scheme != "https" and not (self._local and _literal_loopback(host)):
            if self._local:
                raise EndpointRefused(
                    field, "must be https (plain http is allowed only for loopback addresses in local mode)"
                )
            raise EndpointRefused(field, "must be an https URL")
        literal = _literal_address(host)
        if literal is not None:
            self._refuse_internal(field, host, [literal])
        return literal

    async def check(self, url: str, *, field: str = "endPoint") -> None:
        """The full check when a caller names the URL: the form, then every address its host resolves to."""
        if self.check_form(url, field=field) is None:
            host = urlsplit(url).hostname or ""
            self._refuse_internal(field, host, await self._addresses(field, host))

    def _refuse_internal(self, field: str, host: str, addresses: list[IPAddress]) -> None:
        for address in addresses:
            reason = forbidden_reason(address, allow_loopback=self._local)
            if reason is not None:
                raise EndpointRefused(field, f"{host} is {reason}; Herald connects only to public endpoints")

    async def _addresses(self, field: str, host: str) -> list[IPAddress]:
        try:
            resolved = await self._resolver.resolve(host)
        except OSError as error:
            raise EndpointRefused(field, f"host {host} does not resolve") from error
        if not resolved:
            raise EndpointRefused(field, f"host {host} does not resolve")
        return [ipaddress.ip_address(a.split("%")[0]) for a in resolved]


def _literal_address(host: str) -> IPAddress | None:
    """The address a host names literally (``localhost`` included), or None for a name to resolve."""
    if host.lower() == "localhost":
        return ipaddress.ip_address("127.0.0.1")
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
