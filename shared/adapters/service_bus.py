"""Bus adapter over Azure Service Bus (Azure): identity-based, batched sends, scheduled messages."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from azure.servicebus import ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient, ServiceBusSender

from shared.config import Connection
from shared.messaging import OutgoingMessage


def to_service_bus(message: OutgoingMessage) -> ServiceBusMessage:
    return ServiceBusMessage(
        body=message.body,
        message_id=message.message_id,
        content_type=message.content_type,
        correlation_id=message.correlation_id,
        subject=message.subject,
        application_properties=dict(message.application_properties) or None,  # type: ignore[arg-type]
        scheduled_enqueue_time_utc=message.deliver_at,
    )


class ServiceBusBus:
    def __init__(self, client: ServiceBusClient) -> None:
        self._client = client
        self._senders: dict[str, ServiceBusSender] = {}
        self._lock = asyncio.Lock()

    @classmethod
    def from_connection(cls, connection: Connection) -> ServiceBusBus:
        if connection.connection_string:
            return cls(ServiceBusClient.from_connection_string(connection.connection_string))
        namespace = connection.endpoint("fullyQualifiedNamespace")
        if namespace is None:
            raise RuntimeError("set ServiceBusConnection__fullyQualifiedNamespace (or a connection string)")
        from shared.adapters.identity import credential_for

        return cls(ServiceBusClient(fully_qualified_namespace=namespace, credential=credential_for(connection)))

    async def _sender(self, queue: str) -> ServiceBusSender:
        sender = self._senders.get(queue)
        if sender is None:
            async with self._lock:
                sender = self._senders.get(queue)
                if sender is None:
                    sender = self._senders[queue] = self._client.get_queue_sender(queue)
        return sender

    async def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        sender = await self._sender(queue)
        immediate = [to_service_bus(m) for m in messages if m.deliver_at is None]
        scheduled = [m for m in messages if m.deliver_at is not None]
        while immediate:
            batch = await sender.create_message_batch()
            while immediate:
                try:
                    batch.add_message(immediate[0])
                except ValueError:  # batch full
                    break
                immediate.pop(0)
            await sender.send_messages(batch)
        for message in scheduled:
            assert message.deliver_at is not None
            await sender.schedule_messages(to_service_bus(message), message.deliver_at)

    async def close(self) -> None:
        for sender in self._senders.values():
            await sender.close()
        await self._client.close()
