"""A publish batch measured against the publisher's token bucket: one that fits once the bucket
refills is told when to come back (429 + Retry-After); one larger than the bucket can ever hold is
told it is too large (413), never a 500."""

from __future__ import annotations

import time
import uuid

import pytest

from shared.adapters.table_publish_limits import TablePublishBuckets
from shared.identity.rate_limit import BeyondBurst, LeasedTokenBuckets
from tests.support.events import event, publish


@pytest.fixture
def clock():
    return [time.time()]


@pytest.fixture
def headers(issuer):
    """A publisher of its own: its bucket is shared through the session's Azurite."""
    return issuer.headers("events.publish", sub=f"system:burst-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def small_bucket(services, stores, clock):
    """The publish limiter with HERALD_PUBLISH_BURST=5 at 1 event a second, on a clock the test moves."""
    original = services.publish_limiter
    store = TablePublishBuckets(stores.tables)
    services.publish_limiter = LeasedTokenBuckets(store, rate_per_second=1, burst=5, clock=lambda: clock[0])
    yield services.publish_limiter
    services.publish_limiter = original


async def test_a_batch_larger_than_the_burst_is_413_and_says_the_limit(client, issuer, headers, resource, small_bucket):
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


async def test_a_batch_that_fits_later_is_429_with_retry_after(client, headers, resource, small_bucket, clock):
    assert (await publish(client, headers, [event(resource, f"a-{i}") for i in range(3)])).status_code == 202
    batch = [event(resource, f"b-{i}") for i in range(5)]
    limited = await publish(client, headers, batch)
    assert limited.status_code == 429, limited.text
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.headers["retry-after"] == "3"  # 2 tokens left, 3 more at 1 a second
    clock[0] += 3
    assert (await publish(client, headers, batch)).status_code == 202


async def test_taking_more_than_the_burst_raises_rather_than_waiting_forever(services, stores):
    buckets = LeasedTokenBuckets(TablePublishBuckets(stores.tables), rate_per_second=10, burst=20)
    key = f"system:burst-{uuid.uuid4().hex[:12]}"
    with pytest.raises(BeyondBurst) as raised:
        await buckets.take(key, 21)
    assert raised.value.most == 20
    assert await buckets.take(key, 20) is None  # the refused take left the bucket full
