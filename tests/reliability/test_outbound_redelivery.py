"""A redelivered outbound message pushes only what its earlier delivery did not settle.

Service Bus delivers a message again when its worker dies or loses the lock before completing it.
Here the outbound message is taken from the queue and handed to the ``events_outbound`` trigger as
the host would, left uncompleted (the worker's end), made visible again and delivered a second time
(delivery count 2). Every POST the receiver gets is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import UTC, datetime
from functools import partial

from azure.data.tables.aio import TableServiceClient

from shared.adapters.table_delivery_log import TableDeliveryLog
from shared.adapters.tables import storage_client_options
from shared.config import azurite_connection_string
from shared.events.dispatch import INBOUND_QUEUE
from shared.subscriptions.messages import OUTBOUND_QUEUE
from shared.subscriptions.ports import Attempt, Settled
from tests.subscriptions.conftest import active_subscription, events_received
from tests.support.azurite import free_port
from tests.support.events import event, publish
from tests.support.pipeline import clear, drain, queue_handlers, service_bus_message
from tests.support.receiver import Behaviour


async def outbound_message(client, issuer, stores, resource: str, events: list[dict]):
    """Publish, fan out, and take the one outbound message from the queue, locked, uncompleted."""
    # Earlier tests may have left pointers behind: their fan-out would add messages of its own.
    await clear(stores, (INBOUND_QUEUE, OUTBOUND_QUEUE))
    await publish(client, issuer.headers("events.publish"), events)
    await drain(stores, (INBOUND_QUEUE,))
    queue = stores.bus.service.get_queue_client(OUTBOUND_QUEUE)
    [message] = [m async for m in queue.receive_messages(messages_per_page=32, visibility_timeout=60)]
    assert message.dequeue_count == 1
    return queue, message


async def test_a_message_delivered_again_after_it_was_settled_pushes_nothing_again(
    client, issuer, receiver, resource, services, stores, caplog
):
    caplog.set_level("INFO")
    for path in ("first", "second"):
        await active_subscription(client, issuer, stores, {"endPoint": receiver.url(path), "resourceFilter": resource})
    queue, message = await outbound_message(
        client, issuer, stores, resource, [event(resource, f"e{i}") for i in range(3)]
    )
    # The worker pushes and settles everything, then dies (or loses the lock) before completing the message.
    await queue_handlers()[OUTBOUND_QUEUE](service_bus_message(OUTBOUND_QUEUE, message, 1))  # type: ignore[operator]
    await queue.update_message(message, visibility_timeout=0)

    assert await drain(stores, (OUTBOUND_QUEUE,)) == 1  # delivered again, with delivery count 2
    for path in ("first", "second"):
        assert sorted(e["id"] for e in events_received(receiver, path)) == ["e0", "e1", "e2"], path
    assert "outbound message seen before: skipping deliveries already settled" in caplog.text


async def test_a_worker_killed_mid_message_leaves_only_what_was_in_flight_to_push_again(
    client, issuer, receiver, resource, services, stores
):
    prompt = await active_subscription(
        client,
        issuer,
        stores,
        {"endPoint": receiver.url("prompt"), "resourceFilter": resource, "typeFilter": "no.example.*"},
    )
    await active_subscription(
        client,
        issuer,
        stores,
        {"endPoint": receiver.url("stalled"), "resourceFilter": resource, "typeFilter": "no.case.closed"},
    )
    stalled_answer = asyncio.Event()  # never set: the endpoint hangs until the worker dies
    receiver.behaviours["/stalled"] = Behaviour(hold=stalled_answer)
    events = [event(resource, "p0"), event(resource, "p1"), event(resource, "c2", type="no.case.closed")]
    queue, message = await outbound_message(client, issuer, stores, resource, events)

    handler = queue_handlers()[OUTBOUND_QUEUE]
    worker = asyncio.create_task(handler(service_bus_message(OUTBOUND_QUEUE, message, 1)))  # type: ignore[operator]
    # The prompt endpoint's deliveries are settled (in the delivery log) while the stalled one hangs...
    deadline = time.monotonic() + 20
    while len((await stores.delivery_log.attempts(prompt["id"], 10, None))[0]) < 2:
        assert time.monotonic() < deadline, "the prompt endpoint's attempts were never recorded"
        await asyncio.sleep(0.05)
    assert [e["id"] for e in events_received(receiver, "stalled")] == ["c2"]
    worker.cancel()  # ...when the worker dies.
    with contextlib.suppress(asyncio.CancelledError):
        await worker
    deadline = time.monotonic() + 10
    while receiver.in_flight["/stalled"] and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert receiver.in_flight["/stalled"] == 0  # its request died with it: nothing outlives the handler
    receiver.behaviours["/stalled"] = Behaviour()
    await queue.update_message(message, visibility_timeout=0)

    assert await drain(stores, (OUTBOUND_QUEUE,)) == 1
    assert sorted(e["id"] for e in events_received(receiver, "prompt")) == ["p0", "p1"]
    # The push in flight at the crash is the one pushed again: at least once.
    assert [e["id"] for e in events_received(receiver, "stalled")] == ["c2", "c2"]


async def test_the_delivery_log_waits_out_a_storage_restart(azurite, services, stores):
    """Pushes already made are recorded even when storage is out of reach for a few seconds (a
    restart, a failover): lost, the record would leave the message to push them all again."""
    port = free_port()
    connection = azurite_connection_string(blob=azurite.blob_port, queue=azurite.queue_port, table=port)
    now = datetime.now(UTC)
    attempt = Attempt(f"sub_{uuid.uuid4().hex}", "msg_restart", "e1", 1, now, 200, 5, "delivered")
    message_id = uuid.uuid4().hex
    async with TableServiceClient.from_connection_string(connection, **storage_client_options()) as service:
        log = TableDeliveryLog(service)
        recording = asyncio.create_task(log.record([attempt], Settled(message_id, now, ["msg_restart"])))
        await asyncio.sleep(5)  # storage refuses connections: nothing listens on its port yet
        assert not recording.done()
        storage = await asyncio.start_server(partial(forward, port=azurite.table_port), "127.0.0.1", port)
        try:
            await asyncio.wait_for(recording, timeout=30)
        finally:
            storage.close()
    assert (await stores.delivery_log.attempts(attempt.subscription_id, 10, None))[0] == [attempt]
    assert await stores.delivery_log.settled(message_id, now) == {"msg_restart"}


async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, port: int) -> None:
    upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", port)

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.close()

    await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
