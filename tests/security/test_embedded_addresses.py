"""IPv6 addresses that carry an IPv4 address (IPv4-mapped, NAT64, 6to4, Teredo) get the verdict of
the address they lead to, and site-local IPv6 is internal: property-based over the embedding forms,
then through the subscription API and the connection-time guard."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

import pytest
from aiohttp.abc import AbstractResolver
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from shared.adapters.webhook_http import AiohttpWebhookClient
from shared.endpoint_policy import EndpointPolicy, EndpointRefused, forbidden_reason

EXAMPLES = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address

INTERNAL_V4_NETWORKS = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "168.63.129.16/32",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
]
internal_v4 = st.sampled_from(INTERNAL_V4_NETWORKS).flatmap(
    lambda net: st.integers(int(net.network_address), int(net.broadcast_address)).map(V4)
)
any_v4 = st.integers(0, 2**32 - 1).map(V4)
bits = st.integers


def mapped(v4: V4) -> V6:
    return V6(0xFFFF << 32 | int(v4))


def nat64(v4: V4) -> V6:
    return V6(int(V6("64:ff9b::")) | int(v4))


def sixtofour(v4: V4, rest: int = 0) -> V6:
    """2002:V4ADDR::/48 with any subnet and interface id (RFC 3056)."""
    return V6(0x2002 << 112 | int(v4) << 80 | rest)


def teredo(server: V4, client: V4, flags: int = 0, port: int = 0) -> V6:
    """2001:0000:<server>:<flags>:<port ^ ffff>:<client ^ ffffffff> (RFC 4380)."""
    return V6(0x20010000 << 96 | int(server) << 64 | flags << 48 | (port ^ 0xFFFF) << 32 | (int(client) ^ 0xFFFFFFFF))


single_forms: list[Callable[[V4], V6]] = [mapped, nat64, sixtofour]


@EXAMPLES
@given(v4=internal_v4, form=st.sampled_from(single_forms), rest=bits(0, 2**80 - 1))
def test_every_form_of_an_internal_ipv4_address_is_refused(v4, form, rest):
    address = sixtofour(v4, rest) if form is sixtofour else form(v4)
    assert forbidden_reason(address, allow_loopback=False) is not None, address
    if not v4.is_loopback:  # local mode's loopback allowance never opens another internal address
        assert forbidden_reason(address, allow_loopback=True) is not None, address


@EXAMPLES
@given(v4=internal_v4, rest=bits(0, 2**80 - 1))
def test_6to4_never_counts_as_loopback_even_in_local_mode(v4, rest):
    """A 6to4 packet goes to a relay, so 2002:7f00:1:: is no way to this host's loopback."""
    assert forbidden_reason(sixtofour(v4, rest), allow_loopback=True) is not None


@EXAMPLES
@given(v4=any_v4, form=st.sampled_from(single_forms), rest=bits(0, 2**80 - 1))
def test_an_embedding_form_gets_the_verdict_of_the_ipv4_address_it_carries(v4, form, rest):
    assume(not v4.is_loopback)
    address = sixtofour(v4, rest) if form is sixtofour else form(v4)
    inner = forbidden_reason(v4, allow_loopback=False)
    outer = forbidden_reason(address, allow_loopback=False)
    assert (outer is None) == (inner is None), (address, inner, outer)


@EXAMPLES
@given(
    inside=internal_v4,
    other=any_v4,
    server_inside=st.booleans(),
    flags=bits(0, 0xFFFF),
    port=bits(0, 0xFFFF),
)
def test_a_teredo_address_with_an_internal_server_or_client_is_refused(inside, other, server_inside, flags, port):
    server, client = (inside, other) if server_inside else (other, inside)
    address = teredo(server, client, flags, port)
    assert address.teredo == (server, client)  # the form is what the ipaddress module reads back
    assert forbidden_reason(address, allow_loopback=True) is not None, address


@EXAMPLES
@given(offset=bits(0, 2**118 - 1))
def test_site_local_addresses_are_refused(offset):
    address = V6(int(V6("fec0::")) + offset)
    assert address.is_site_local
    assert forbidden_reason(address, allow_loopback=True) is not None


def test_public_6to4_and_native_ipv6_stay_allowed():
    """The guard does not refuse the forms wholesale: 6to4 of a public address is a public address."""
    for text in ("2002:808:808::1", "2002:5db8:d822::1", "2606:4700:4700::1111"):
        assert forbidden_reason(ipaddress.ip_address(text), allow_loopback=False) is None, text


class _Names:
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers

    async def resolve(self, host: str) -> list[str]:
        return self.answers[host]


@pytest.mark.parametrize(
    "url",
    [
        "https://[2002:a9fe:a9fe::]/latest/meta-data/",  # 6to4 of 169.254.169.254
        "https://[2002:a00:1::1]/",  # 6to4 of 10.0.0.1
        "https://[2002:a83f:8110::]/",  # 6to4 of 168.63.129.16 (Azure's wire server)
        "https://[fec0::1]/",  # site-local
        "https://[2001:0:a9fe:a9fe::1]/",  # Teredo with server 169.254.169.254
        "https://sixtofour.example/",  # a name whose AAAA is 6to4 of the metadata address
    ],
)
async def test_the_policy_refuses_embedded_internal_addresses(url):
    policy = EndpointPolicy(local_mode=False, resolver=_Names({"sixtofour.example": ["2002:a9fe:a9fe::1"]}))
    with pytest.raises(EndpointRefused):
        await policy.check(url)


async def test_the_subscription_api_refuses_a_6to4_metadata_endpoint(client, issuer, resource):
    for url in ("https://[2002:a9fe:a9fe::]/", "https://[fec0::1]/"):
        response = await client.post(
            "/api/v1/subscriptions",
            json={"endPoint": url, "resourceFilter": resource},
            headers=issuer.headers("events.subscribe"),
        )
        assert response.status_code == 400, (url, response.text)
        assert response.json()["type"] == "urn:herald:problem:endpoint-refused"


class _SixToFourAnswer(AbstractResolver):
    """A name that passed the check at creation now answers with 6to4 of the metadata address."""

    def __init__(self) -> None:
        self.lookups = 0

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):  # type: ignore[override]
        self.lookups += 1
        return [
            {
                "hostname": host,
                "host": "2002:a9fe:a9fe::1",
                "port": port,
                "family": socket.AF_INET6,
                "proto": 0,
                "flags": 0,
            }
        ]

    async def close(self) -> None:
        pass


async def test_the_connection_guard_refuses_a_6to4_answer():
    resolver = _SixToFourAnswer()
    client = AiohttpWebhookClient(allow_loopback=False, resolver=resolver)
    try:
        response = await client.post("https://rebind.example/hook", b"{}", {}, timeout=5)
    finally:
        await client.close()
    assert resolver.lookups >= 1
    assert response.status is None and "169.254.169.254" in (response.error or ""), response.error
