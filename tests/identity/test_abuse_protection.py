"""Webhook endpoints cannot reach inside (SSRF), checked at creation and at every connection;
publishers are rate-limited."""

from __future__ import annotations

import socket
import time
import uuid

import pytest
from aiohttp.abc import AbstractResolver

from shared.adapters.table_publish_limits import TablePublishBuckets
from shared.adapters.webhook_http import AiohttpWebhookClient
from shared.endpoint_policy import EndpointPolicy, EndpointRefused
from shared.identity.rate_limit import LeasedTokenBuckets
from tests.support.events import event, publish


class StubResolver:
    """Answers from a table, as a DNS server would; ``answers`` may change between lookups (rebinding)."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers

    async def resolve(self, host: str) -> list[str]:
        if host not in self.answers:
            raise OSError(f"{host}: no such host")
        return self.answers[host]


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://10.1.2.3/",
        "https://172.20.0.1/",
        "https://192.168.1.10/",
        "https://169.254.169.254/latest/meta-data/",  # cloud metadata
        "https://168.63.129.16/",  # Azure wire server
        "https://100.100.100.200/",  # carrier-grade NAT range (Alibaba metadata)
        "https://[::ffff:10.0.0.1]/",  # IPv4-mapped
        "https://[64:ff9b::a9fe:a9fe]/",  # NAT64 form of 169.254.169.254
        "https://[fd00:ec2::254]/",  # unique-local (AWS IMDS over IPv6)
        "https://[fe80::1]/",
        "https://0.0.0.0/",
        "https://224.0.0.1/",
        "https://internal.example/",  # a name that resolves inside
        "https://nowhere.example/",  # a name that does not resolve
        "http://203.0.113.10/",  # plain http outside local mode
    ],
)
async def test_internal_or_insecure_endpoints_are_refused(url):
    resolver = StubResolver({"internal.example": ["93.184.216.34", "10.0.0.5"], "public.example": ["93.184.216.34"]})
    with pytest.raises(EndpointRefused):
        await EndpointPolicy(local_mode=False, resolver=resolver).check(url)


async def test_public_https_endpoints_are_accepted():
    resolver = StubResolver({"public.example": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]})
    await EndpointPolicy(local_mode=False, resolver=resolver).check("https://public.example/hook")


async def test_local_mode_allows_loopback_only():
    policy = EndpointPolicy(local_mode=True, resolver=StubResolver({}))
    await policy.check("http://127.0.0.1:8000/hook")
    await policy.check("http://localhost:8000/hook")
    for url in ("http://10.0.0.1/", "https://169.254.169.254/", "http://example.org/"):
        with pytest.raises(EndpointRefused):
            await policy.check(url)


class RebindingResolver(AbstractResolver):
    """aiohttp's resolver interface: a public answer first, then loopback (DNS rebinding)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.lookups = 0

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):  # type: ignore[override]
        self.lookups += 1
        return [
            {"hostname": host, "host": "127.0.0.1", "port": self.port, "family": socket.AF_INET, "proto": 0, "flags": 0}
        ]

    async def close(self) -> None:
        pass


async def test_dns_rebinding_is_refused_at_connection(receiver):
    """The name passed the check at creation; at push time it resolves to loopback: no request leaves."""
    url = f"https://rebind.example:{receiver.port}/hook"
    await EndpointPolicy(local_mode=False, resolver=StubResolver({"rebind.example": ["93.184.216.34"]})).check(url)

    resolver = RebindingResolver(receiver.port)
    client = AiohttpWebhookClient(allow_loopback=False, resolver=resolver)
    try:
        response = await client.post(f"http://rebind.example:{receiver.port}/hook", b"{}", {}, timeout=5)
    finally:
        await client.close()
    assert resolver.lookups == 1
    assert response.status is None and "loopback" in (response.error or "")
    assert receiver.posts("hook") == []


async def test_subscription_api_refuses_ssrf_targets(client, issuer, resource):
    for url in ("https://169.254.169.254/", "https://10.0.0.1/", "http://192.168.0.1/"):
        response = await client.post(
            "/api/v1/subscriptions",
            json={"endPoint": url, "resourceFilter": resource},
            headers=issuer.headers("events.subscribe"),
        )
        assert response.status_code == 400, url
        assert response.json()["type"] == "urn:herald:problem:endpoint-refused"


async def test_token_buckets_refill_at_the_rate(services, stores):
    now = [time.time()]
    store = TablePublishBuckets(stores.tables)
    buckets = LeasedTokenBuckets(store, rate_per_second=10, burst=20, clock=lambda: now[0])
    a, b = (f"system:rate-{uuid.uuid4().hex[:12]}" for _ in range(2))
    assert await buckets.take(a, 20) is None
    wait = await buckets.take(a, 5)
    assert wait == pytest.approx(0.5)
    assert await buckets.take(b, 1) is None  # buckets are per publisher
    now[0] += 0.5
    assert await buckets.take(a, 5) is None


async def test_a_publisher_over_its_rate_gets_429_with_retry_after(client, issuer, resource, services, stores):
    original = services.publish_limiter
    services.publish_limiter = LeasedTokenBuckets(TablePublishBuckets(stores.tables), rate_per_second=1, burst=5)
    try:
        headers = issuer.headers("events.publish", sub=f"system:rate-{uuid.uuid4().hex[:12]}")
        assert (await publish(client, headers, [event(resource, f"r{i}") for i in range(5)])).status_code == 202
        limited = await publish(client, headers, [event(resource, "one-too-many")])
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.headers["content-type"] == "application/problem+json"
    finally:
        services.publish_limiter = original
