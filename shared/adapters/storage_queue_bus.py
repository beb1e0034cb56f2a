"""Bus adapter over Azure Storage queues (Azurite locally).

A storage queue carries less than a Service Bus message, so each queue message is a small JSON
envelope holding the body and the broker properties Herald relies on. devhost decodes the same
envelope to hand triggers a real ``azure.functions.servicebus.ServiceBusMessage``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue.aio import QueueServiceClient

from shared.adapters.tables import storage_client_options
from shared.messaging import OutgoingMessage, PropertyValue

ENVELOPE_VERSION = 1
# A storage queue hides a message for at most seven days; longer delays are not needed by Herald.
MAX_DELAY_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Envelope:
    """What a storage queue message carries, decoded."""

    message_id: str
    body: bytes
    content_type: str | None
    correlation_id: str | None
    subject: str | None
    application_properties: Mapping[str, PropertyValue]
    enqueued_at: datetime
    scheduled_for: datetime | None


def encode_envelope(message: OutgoingMessage, now: datetime) -> str:
    document: dict[str, Any] = {
        "v": ENVELOPE_VERSION,
        "id": message.message_id,
        "body": base64.b64encode(message.body).decode("ascii"),
        "contentType": message.content_type,
        "correlationId": message.correlation_id,
        "subject": message.subject,
        "props": dict(message.application_properties),
        "enqueuedAt": now.isoformat(),
        "scheduledFor": message.deliver_at.isoformat() if message.deliver_at else None,
    }
    return json.dumps(document, separators=(",", ":"))


def decode_envelope(text: str) -> Envelope:
    document = json.loads(text)
    if document.get("v") != ENVELOPE_VERSION:
        raise ValueError(f"unknown envelope version {document.get('v')!r}")
    scheduled = document.get("scheduledFor")
    return Envelope(
        message_id=document["id"],
        body=base64.b64decode(document["body"]),
        content_type=document.get("contentType"),
        correlation_id=document.get("correlationId"),
        subject=document.get("subject"),
        application_properties=document.get("props") or {},
        enqueued_at=datetime.fromisoformat(document["enqueuedAt"]),
        scheduled_for=datetime.fromisoformat(scheduled) if scheduled else None,
    )


def dead_letter_queue_name(queue: str) -> str:
    return f"{queue}-deadletter"


# Called with the seconds until the message is visible, after each message a StorageQueueBus sent to
# the queue. A host polling these queues in the same process (devhost) then receives it at once
# instead of at its next poll; Service Bus needs no such hook, its receivers are pushed messages.
SendListener = Callable[[float], None]
_send_listeners: dict[str, list[SendListener]] = {}


def watch_sends(queue: str, listener: SendListener) -> Callable[[], None]:
    """Calls ``listener`` for every message this process sends to ``queue``; returns the unwatch call.

    The listener runs in the sender's task and thread, so it must only schedule work, never block."""
    _send_listeners.setdefault(queue, []).append(listener)

    def unwatch() -> None:
        listeners = _send_listeners.get(queue, [])
        with contextlib.suppress(ValueError):
            listeners.remove(listener)
        if not listeners:
            _send_listeners.pop(queue, None)

    return unwatch


class StorageQueueBus:
    """Sends envelopes to storage queues; a delayed message is sent with a visibility timeout."""

    def __init__(self, connection_string: str, *, send_concurrency: int = 16, **client_options: Any) -> None:
        # client_options reach the SDK client (for instance azure-core request hooks that count operations).
        self._service = QueueServiceClient.from_connection_string(
            connection_string, **{**storage_client_options(), **client_options}
        )
        self._send_slots = asyncio.Semaphore(send_concurrency)

    @property
    def service(self) -> QueueServiceClient:
        return self._service

    async def ensure_queues(self, names: Sequence[str]) -> None:
        for name in names:
            with contextlib.suppress(ResourceExistsError):
                await self._service.create_queue(name)

    async def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        client = self._service.get_queue_client(queue)
        now = datetime.now(UTC)

        async def send_one(message: OutgoingMessage) -> None:
            delay = 0
            if message.deliver_at is not None:
                delay = max(0, min(MAX_DELAY_SECONDS, int((message.deliver_at - now).total_seconds() + 0.999)))
            async with self._send_slots:
                await client.send_message(
                    encode_envelope(message, now),
                    visibility_timeout=delay or None,
                    time_to_live=-1,
                )
            for listener in tuple(_send_listeners.get(queue, ())):  # a copy: a host may unwatch meanwhile
                listener(float(delay))

        await asyncio.gather(*(send_one(message) for message in messages))

    async def close(self) -> None:
        await self._service.close()
