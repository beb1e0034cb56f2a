"""Matching reads the partitions of the event's subject (and of subscriptions without one), so its
cost follows the number of matches, not the number of subscriptions. Asserted as counted storage
operations; the timing from 1,000 to 1,000,000 subscriptions is measured in bench/."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime

from azure.data.tables.aio import TableServiceClient

from shared.adapters.table_subscription_store import TableSubscriptionStore
from shared.events.log import LogRow
from shared.identity.secret_box import LocalSecretBox
from shared.subscriptions.fanout import Fanout
from shared.subscriptions.model import Filters, Secrets, Status, Subscription
from tests.support.counting import StorageCounter
from tests.support.fakes import RecordingBus


def subscription(resource: str, n: int, subject: str | None) -> Subscription:
    return Subscription(
        id=f"sub_{n:032x}",
        consumer=f"org:{n:09d}",
        endpoint=f"https://example.org/{n}",
        filters=Filters(resource=resource, subject=subject),
        status=Status.ACTIVE,
        created=datetime.now(UTC),
        secrets=Secrets("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    )


async def index(service: TableServiceClient, subscriptions: list[Subscription], box=None) -> None:
    """Writes synthetic subscriptions straight into the index (sealed as Herald seals them)."""
    table = service.get_table_client("subscriptions")
    store = TableSubscriptionStore(service, box=box)
    slots = asyncio.Semaphore(32)

    async def put(s: Subscription) -> None:
        async with slots:
            await table.upsert_entity(await store._sealed(s))

    await asyncio.gather(*(put(s) for s in subscriptions))


async def measure(settings, resource: str, total: int) -> tuple[int, int, int]:
    """Index ``total`` subscriptions told apart by subject (+3 without one); match one event."""
    policy = StorageCounter()
    service = TableServiceClient.from_connection_string(settings.storage_connection_string, **policy.hooks())
    try:
        await index(service, [subscription(resource, n, f"person:{n}") for n in range(total)])
        await index(service, [subscription(resource, 10_000_000 + n, None) for n in range(3)])
        store = TableSubscriptionStore(service)
        row = LogRow(
            seq=1,
            stored_at=datetime.now(UTC),
            events=[
                json.dumps(
                    {"resource": resource, "subject": "person:7", "type": "t", "source": "s", "id": "1"}
                ).encode()
            ],
        )
        policy.reset()
        deliveries = await Fanout(store, None, RecordingBus(), rows=None).match(resource, [row])  # type: ignore[arg-type]
        return len(deliveries), policy.requests, policy.entities_read
    finally:
        await service.close()


async def test_matching_cost_is_flat_in_the_number_of_subscriptions(settings, services):
    small = await measure(settings, "urn:herald:test:matching-small", 100)
    large = await measure(settings, "urn:herald:test:matching-large", 3000)
    assert small == large == (4, 2, 4)  # 4 matches; 2 partition queries; 4 entities read


async def test_storage_and_queue_operations_per_delivered_event_stay_far_below_one_at_high_fan_out(
    settings, herald, receiver, resource
):
    """600 subscribers of one resource, one event: count every storage and queue request from the
    append to the last push, and divide by the deliveries."""
    from shared.adapters.storage_queue_bus import StorageQueueBus
    from shared.composition import root
    from shared.composition.root import build_herald
    from shared.events.dispatch import INBOUND_QUEUE
    from shared.events.model import validate_event
    from shared.subscriptions.messages import OUTBOUND_QUEUE
    from tests.support.events import event
    from tests.support.pipeline import clear, drain

    plain = TableServiceClient.from_connection_string(settings.storage_connection_string)
    subscribers = [subscription(resource, 50_000_000 + n, None) for n in range(600)]
    subscribers = [replace(s, endpoint=receiver.url(f"fan/{n}")) for n, s in enumerate(subscribers)]
    await index(plain, subscribers, box=LocalSecretBox.from_file(settings.secret_key_path))
    await plain.close()

    counter = StorageCounter()
    instrumented = build_herald(
        settings,
        tables=TableServiceClient.from_connection_string(settings.storage_connection_string, **counter.hooks()),
        bus=StorageQueueBus(settings.storage_connection_string, **counter.hooks()),
    )
    root.install(instrumented)
    try:
        await clear(instrumented.stores, (INBOUND_QUEUE, OUTBOUND_QUEUE))
        counter.reset()
        await instrumented.services.publisher.publish(
            [validate_event(event(resource, "fan-1"), received_at=datetime.now(UTC))]
        )
        await drain(instrumented.stores, (INBOUND_QUEUE, OUTBOUND_QUEUE))
        delivered = sum(len(receiver.posts(f"fan/{n}")) for n in range(600))
        assert delivered == 600
        per_delivery = counter.requests / delivered
        assert per_delivery < 0.1, f"{counter.requests} storage and queue requests for {delivered} deliveries"
    finally:
        await instrumented.close()
        root.install(herald)
