"""Per-orderer limits on notifications a minute and a day: 429 with Retry-After, 413 for an order a
day cannot hold, counted in notifications and shared by every instance."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from azure.data.tables.aio import TableServiceClient

from shared.adapters.table_order_governance import TableUsageStore
from shared.notifications.limits import LimitExceeded, Limits, OrderLimiter
from tests.notifications.conftest import NOON, order_body, post_order
from tests.support.identities import random_org

H = "notifications.order"
ORDERS = "/api/v1/notifications/orders"


@pytest.fixture
def limits() -> Limits:
    return Limits(per_minute=5, per_day=8)


def emails(n: int) -> list[dict[str, str]]:
    return [{"emailAddress": f"r{i}.{uuid.uuid4().hex[:6]}@example.com"} for i in range(n)]


async def test_over_the_minute_limit_is_a_429_with_retry_after_and_counts_notifications(
    client, issuer, harness, sender
):
    assert (await post_order(client, issuer, sender, recipients=emails(3))).status_code == 202
    body = order_body(recipients=emails(3))
    over = await client.post(ORDERS, json=body, headers=issuer.headers(H, sub=sender))
    assert over.status_code == 429, over.text
    # 3 + 3 > 5 a minute: one notification must refill first, at 5/60 a second.
    assert over.headers["retry-after"] == "12" and over.json()["window"] == "minute"
    harness.clock.advance(timedelta(seconds=12))
    assert (await client.post(ORDERS, json=body, headers=issuer.headers(H, sub=sender))).status_code == 202
    # Another orderer has limits of its own.
    assert (await post_order(client, issuer, random_org(), recipients=emails(5))).status_code == 202


async def test_the_day_limit_and_an_order_too_large_for_a_day(client, issuer, harness, sender):
    too_large = await post_order(client, issuer, sender, recipients=emails(9))
    assert too_large.status_code == 413, too_large.text
    assert too_large.json()["notifications"] == 9 and too_large.json()["limit"] == 8
    # An order larger than a minute's allowance fits into a full bucket, and holds the next one back.
    assert (await post_order(client, issuer, sender, recipients=emails(6))).status_code == 202
    held = await post_order(client, issuer, sender, recipients=emails(1))
    assert held.status_code == 429 and held.json()["window"] == "minute"
    harness.clock.advance(timedelta(minutes=2))
    assert (await post_order(client, issuer, sender, recipients=emails(2))).status_code == 202
    harness.clock.advance(timedelta(minutes=2))
    day = await post_order(client, issuer, sender, recipients=emails(1))  # 6 + 2 + 1 > 8 today
    assert day.status_code == 429 and day.json()["window"] == "day"
    assert int(day.headers["retry-after"]) == 13 * 3600 - 4 * 60  # until midnight UTC (NOON is 11:00 UTC)
    harness.clock.advance(timedelta(hours=13))
    assert (await post_order(client, issuer, sender, recipients=emails(1))).status_code == 202


async def test_a_replayed_order_is_answered_not_counted(client, issuer, harness, sender):
    body = order_body(recipients=emails(5))
    first = await client.post(ORDERS, json=body, headers=issuer.headers(H, sub=sender))
    again = await client.post(ORDERS, json=body, headers=issuer.headers(H, sub=sender))
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["orderId"] == first.json()["orderId"]


async def test_the_limit_holds_across_instances(azurite, services):
    """Two instances (two storage clients) racing for one orderer admit no more than the limit."""
    orderer, now = random_org(), NOON
    limits = Limits(per_minute=5, per_day=100)
    clients = [TableServiceClient.from_connection_string(azurite.connection_string) for _ in range(2)]
    limiters = [OrderLimiter(TableUsageStore(c), limits) for c in clients]
    try:

        async def one(limiter: OrderLimiter) -> bool:
            try:
                await limiter.take(orderer, 1, now)
            except LimitExceeded:
                return False
            return True

        admitted = await asyncio.gather(*(one(limiters[i % 2]) for i in range(12)))
    finally:
        for c in clients:
            await c.close()
    assert sum(admitted) == 5
