"""Drives Herald's queue-triggered functions from the real Azurite queues, in-process.

Each message reaches the function's user function the way devhost hands it over: as the host would
send it, decoded by the azure-functions Service Bus converter (``devhost.bindings``); nothing of
Herald is mocked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import azure.functions as func
from azure.storage.queue import QueueMessage

from devhost.bindings import ReceivedMessage, decode, service_bus_input
from shared.adapters.storage_queue_bus import decode_envelope
from shared.composition.root import Stores
from tests.support.functions_index import functions


def queue_handlers() -> dict[str, object]:
    """The app's Service Bus-triggered user functions, by queue name."""
    handlers: dict[str, object] = {}
    for function in functions():
        for binding in function.get_bindings():
            if binding.type == "serviceBusTrigger":
                handlers[binding.queue_name] = function.get_user_function()
    return handlers


def service_bus_message(queue: str, message: QueueMessage, sequence: int) -> func.ServiceBusMessage:
    """What the trigger hands the function for a message received from the queue; its dequeue count
    is the delivery count, so a message received again arrives as a redelivery."""
    envelope = decode_envelope(message.content)
    received = ReceivedMessage(
        body=envelope.body,
        message_id=envelope.message_id,
        delivery_count=message.dequeue_count or 1,
        sequence_number=sequence,
        enqueued_time=envelope.enqueued_at,
        locked_until=datetime.now(UTC),
        lock_token=message.id,
        to=queue,
        application_properties=dict(envelope.application_properties),
        content_type=envelope.content_type,
    )
    return decode("serviceBusTrigger", func.ServiceBusMessage, service_bus_input(queue, [received], many=False))


async def take(stores: Stores, queue: str, wanted: Callable[[bytes], bool], *, visibility_timeout: int) -> list[bytes]:
    """The bodies of the visible messages in ``queue`` that are ``wanted``, taken off the queue; the
    others stay for whoever they are for, hidden for ``visibility_timeout`` seconds."""
    await stores.event_log.flush()  # a publish is answered once durable; its inbound message follows
    client = stores.bus.service.get_queue_client(queue)  # type: ignore[attr-defined]
    found: list[bytes] = []
    for _ in range(5):
        batch = [m async for m in client.receive_messages(messages_per_page=32, visibility_timeout=visibility_timeout)]
        if not batch:
            break
        for message in batch:
            body = decode_envelope(message.content).body
            if wanted(body):
                found.append(body)
                await client.delete_message(message)
    return found


async def clear(stores: Stores, queues: tuple[str, ...]) -> None:
    """Empty the named queues: the session's queues are shared, and a test that counts or times its
    own messages must not also handle what earlier tests left behind."""
    for queue in queues:
        await stores.bus.service.get_queue_client(queue).clear_messages()  # type: ignore[attr-defined]


async def drain(stores: Stores, queues: tuple[str, ...], *, rounds: int = 20, idle_rounds: int = 2) -> int:
    """Run messages until every named queue stays empty for ``idle_rounds`` polls; returns messages handled."""
    handlers = queue_handlers()
    handled = 0
    idle = 0
    for _ in range(rounds * 10):
        await stores.event_log.flush()  # the inbound messages of what the handlers just published
        progressed = False
        for queue in queues:
            client = stores.bus.service.get_queue_client(queue)  # type: ignore[attr-defined]
            async for message in client.receive_messages(messages_per_page=32, visibility_timeout=30):
                await handlers[queue](service_bus_message(queue, message, handled + 1))  # type: ignore[operator]
                await client.delete_message(message)
                handled += 1
                progressed = True
        if progressed:
            idle = 0
        else:
            idle += 1
            if idle >= idle_rounds:
                return handled
            await asyncio.sleep(0.05)
    return handled


def now() -> datetime:
    return datetime.now(UTC)
