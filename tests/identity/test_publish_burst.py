"""A publish batch measured against the publisher's token bucket: one that fits once the bucket
refills is told when to come back (429 + Retry-After); one larger than the bucket can ever hold is
told it is too large (413), never a 500."""

from __future__ import annotations

import pytest

from shared.identity.rate_limit import BeyondBurst, TokenBuckets
from tests.support.events import event, publish


@pytest.fixture
def clock():
    return [0.0]


@pytest.fixture
def small_bucket(services, clock):
    """The publish limiter with HERALD_PUBLISH_BURST=5 at 1 event a second, on a clock the test moves."""
    original = services.publish_limiter
    services.publish_limiter = TokenBuckets(rate_per_second=1, burst=5, clock=lambda: clock[0])
    yield services.publish_limiter
    services.publish_limiter = original


async def test_a_batch_larger_than_the_burst_is_413_and_says_the_limit(client, issuer, resource, small_bucket):
    headers = issuer.headers("events.publish")
    response = await publish(client, headers, [event(resource, f"big-{i}") for i in range(6)])
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:herald:problem:request-too-large"
    assert problem["maxEvents"] == 5
    assert "at most 5 events" in problem["detail"]
    # Nothing was stored and no tokens were spent: a batch of the full burst still goes through.
    read = await client.get("/api/v1/events", params={"resource": resource}, headers=issuer.headers("events.read"))
    assert read.json() == []
    full = await publish(client, headers, [event(resource, f"fits-{i}") for i in range(5)])
    assert full.status_code == 202, full.text


async def test_a_batch_that_fits_later_is_429_with_retry_after(client, issuer, resource, small_bucket, clock):
    headers = issuer.headers("events.publish")
    assert (await publish(client, headers, [event(resource, f"a-{i}") for i in range(3)])).status_code == 202
    batch = [event(resource, f"b-{i}") for i in range(5)]
    limited = await publish(client, headers, batch)
    assert limited.status_code == 429, limited.text
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.headers["retry-after"] == "3"  # 2 tokens left, 3 more at 1 a second
    clock[0] += 3
    assert (await publish(client, headers, batch)).status_code == 202


def test_taking_more_than_the_burst_raises_rather_than_waiting_forever():
    buckets = TokenBuckets(rate_per_second=10, burst=20)
    with pytest.raises(BeyondBurst) as raised:
        buckets.take("a", 21)
    assert raised.value.most == 20
    assert buckets.take("a", 20) is None  # the refused take left the bucket full
