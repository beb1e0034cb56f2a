"""The publish limit holds across instances: each one below is a separate limiter (a separate
"process") on the same Azurite, as Herald's instances share one storage account. Together they
admit no more than one bucket allows, and each one alone still admits all of it."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from azure.data.tables.aio import TableServiceClient

from shared.adapters.table_publish_limits import TablePublishBuckets
from shared.composition.root import build_herald
from shared.config import Settings
from shared.identity.rate_limit import LeasedTokenBuckets
from shared.services import Services
from tests.support.counting import StorageCounter
from tests.support.events import event, publish


def publisher() -> str:
    """A publisher of its own per test: the buckets live in the session's shared Azurite."""
    return f"system:limit-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def clock() -> list[float]:
    return [time.time()]


@pytest.fixture
async def tables(settings: Settings) -> AsyncIterator[Callable[..., TableServiceClient]]:
    opened: list[TableServiceClient] = []

    def open_tables(**hooks: object) -> TableServiceClient:
        service = TableServiceClient.from_connection_string(settings.storage_connection_string, **hooks)
        opened.append(service)
        return service

    yield open_tables
    for service in opened:
        await service.close()


def limiter(tables: TableServiceClient, clock: list[float], **limits: float) -> LeasedTokenBuckets:
    return LeasedTokenBuckets(TablePublishBuckets(tables), clock=lambda: clock[0], **limits)  # type: ignore[arg-type]


async def test_two_instances_together_admit_no_more_than_the_limit(services, tables, clock):
    key = publisher()
    first = limiter(tables(), clock, rate_per_second=10, burst=100, slice_tokens=20)
    second = limiter(tables(), clock, rate_per_second=10, burst=100, slice_tokens=20)
    admitted = {"first": 0, "second": 0}
    for _ in range(150):  # alternate, one event a request, until both are refused
        for name, instance in (("first", first), ("second", second)):
            if await instance.take(key, 1) is None:
                admitted[name] += 1
    total = admitted["first"] + admitted["second"]
    assert total <= 100, admitted
    # Both served: each leased slices. At most one slice lies unspent in the instance refused last.
    assert admitted["first"] >= 20 and admitted["second"] >= 20, admitted
    assert total >= 100 - 20, admitted


async def test_racing_instances_admit_no_more_than_the_limit(services, tables, clock):
    key = publisher()
    instances = [limiter(tables(), clock, rate_per_second=10, burst=100, slice_tokens=7) for _ in range(3)]
    answers = await asyncio.gather(*(instance.take(key, 1) for instance in instances for _ in range(60)))
    assert sum(1 for wait in answers if wait is None) <= 100


async def test_each_instance_alone_admits_the_full_limit_then_refills_at_the_rate(services, tables, clock):
    key = publisher()
    counter = StorageCounter()
    alone = limiter(tables(**counter.hooks()), clock, rate_per_second=10, burst=100, slice_tokens=20)
    assert [await alone.take(key, 1) for _ in range(100)] == [None] * 100
    # Leased a slice at a time: a conditional write per 20 events (and one read), not one per request.
    assert counter.requests <= 100 // 20 + 1
    wait = await alone.take(key, 1)
    assert wait == pytest.approx(0.1)
    clock[0] += 1.0  # ten more tokens
    assert [await alone.take(key, 1) for _ in range(10)] == [None] * 10
    assert await alone.take(key, 1) is not None

    # The other instance, alone on another publisher, admits the full limit too.
    other = limiter(tables(), clock, rate_per_second=10, burst=100, slice_tokens=20)
    assert await other.take(publisher(), 100) is None


async def test_an_unspent_slice_lapses_and_the_rest_stays_in_the_shared_bucket(services, tables, clock):
    key = publisher()
    first = limiter(tables(), clock, rate_per_second=0.001, burst=50, slice_tokens=20)
    second = limiter(tables(), clock, rate_per_second=0.001, burst=50, slice_tokens=20)
    assert await first.take(key, 1) is None  # leases 20, spends 1
    assert await second.take(key, 30) is None  # the 30 the bucket still holds
    assert await second.take(key, 1) is not None
    clock[0] += 2.0  # first's 19 unspent tokens lapse with its lease
    assert await first.take(key, 1) is not None


@pytest.fixture
async def two_instances(settings: Settings, services: Services) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Two Herald API instances on one Azurite, each with its own services, at 5 events per publisher
    (refilling at one event in 1,000 s, so nothing refills during the test)."""
    from shared.api.app import create_api

    limited = dataclasses.replace(settings, publish_burst=5, publish_rate_per_second=0.001)
    built = [build_herald(limited) for _ in range(2)]
    clients = []
    for instance in built:

        async def provide(instance: Services = instance.services) -> Services:
            return instance

        transport = httpx.ASGITransport(app=create_api(provide))
        clients.append(httpx.AsyncClient(transport=transport, base_url="http://herald.test"))
    yield clients
    for client in clients:
        await client.aclose()
    for instance in built:
        await instance.close()


async def test_a_publisher_gets_its_limit_once_across_two_api_instances(two_instances, issuer, resource):
    headers = issuer.headers("events.publish", sub=publisher())
    statuses = []
    for i in range(10):
        response = await publish(two_instances[i % 2], headers, [event(resource, f"across-{i}")])
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.headers["content-type"] == "application/problem+json"
            assert int(response.headers["retry-after"]) >= 1
    assert statuses.count(202) == 5, statuses
    assert statuses.count(429) == 5, statuses
