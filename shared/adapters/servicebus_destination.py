"""Destinations on Azure Service Bus: a consumer's queue or topic, sent to with ``azure-servicebus`` and
Herald's identity (the managed identity in Azure, which the consumer grants Azure Service Bus Data
Sender on the queue or topic).

Each push is one message in the CloudEvents AMQP binding's structured mode: the body is the event as
stored (``application/cloudevents+json``), and, as that mode allows, the attributes are also
application properties named ``cloudEvents:<attribute>`` (data aside), so subscription rules can
filter on them. The message id is the push's ``webhook-id``, the same across retries and replays: a
queue or topic with duplicate detection drops a re-send. The Standard Webhooks ``webhook-id``,
``webhook-timestamp`` and ``webhook-signature`` go along as application properties, so a receiver
can verify a message came from Herald even where others may send too. The message's subject is the
event's type.

Outcomes are answered as a webhook's: 201 when Service Bus took the message, 401/403 when Herald's
identity is refused, 404 when the entity is gone, 429/503 when it is full or busy, None when nothing
answered. A sender that failed is closed and made again on the next push.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from azure.core.exceptions import AzureError
from azure.servicebus import ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient, ServiceBusSender
from azure.servicebus.exceptions import (
    MessageSizeExceededError,
    MessagingEntityDisabledError,
    MessagingEntityNotFoundError,
    OperationTimeoutError,
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
    ServiceBusQuotaExceededError,
    ServiceBusServerBusyError,
)

from shared.subscriptions.delivery import CLOUDEVENTS_JSON
from shared.subscriptions.ports import WebhookResponse
from shared.subscriptions.targets import Destination, DestinationKind

ATTRIBUTE_PREFIX = "cloudEvents:"  # the CloudEvents AMQP binding's application property names
SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
_NOT_ATTRIBUTES = frozenset({"data", "data_base64", "datacontenttype"})
# What each refusal means, as the status a webhook would have answered.
_OUTCOMES: tuple[tuple[type[Exception], int, str], ...] = (
    (ServiceBusAuthenticationError, 401, "Service Bus did not accept Herald's identity (401)"),
    (
        ServiceBusAuthorizationError,
        403,
        "Herald's identity may not send to this queue or topic (403): its owner grants it Azure Service Bus Data Sender",
    ),
    (MessagingEntityNotFoundError, 404, "there is no such queue or topic in the namespace (404)"),
    (MessagingEntityDisabledError, 409, "the queue or topic is disabled (409)"),
    (MessageSizeExceededError, 413, "the event is larger than the namespace's message size limit (413)"),
    (ServiceBusQuotaExceededError, 429, "the queue or topic is full (429)"),
    (ServiceBusServerBusyError, 503, "Service Bus is busy (503)"),
)


class ServiceBusDestinations:
    """Sends to queues and topics of any namespace: one client per namespace (``client_for`` makes it),
    one sender per queue or topic, kept while they work."""

    def __init__(self, client_for: Callable[[str], ServiceBusClient]) -> None:
        self._client_for = client_for
        self._clients: dict[str, ServiceBusClient] = {}
        self._senders: dict[tuple[str, DestinationKind, str], ServiceBusSender] = {}
        self._lock = asyncio.Lock()

    async def _sender(self, destination: Destination) -> ServiceBusSender:
        assert destination.namespace is not None and destination.name is not None
        key = (destination.namespace, destination.kind, destination.name)
        sender = self._senders.get(key)
        if sender is None:
            async with self._lock:
                sender = self._senders.get(key)
                if sender is None:
                    client = self._clients.get(destination.namespace)
                    if client is None:
                        client = self._clients[destination.namespace] = self._client_for(destination.namespace)
                    sender = (
                        client.get_queue_sender(queue_name=destination.name)
                        if destination.kind is DestinationKind.SERVICE_BUS_QUEUE
                        else client.get_topic_sender(topic_name=destination.name)
                    )
                    self._senders[key] = sender
        return sender

    async def _forget(self, destination: Destination) -> None:
        assert destination.namespace is not None and destination.name is not None
        sender = self._senders.pop((destination.namespace, destination.kind, destination.name), None)
        if sender is not None:
            # Closing a broken sender may fail as it broke; it is dropped either way.
            with contextlib.suppress(Exception):
                await sender.close()

    async def publish(
        self, destination: Destination, message_id: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> WebhookResponse:
        started = time.perf_counter()

        def answered(status: int | None, error: str | None = None) -> WebhookResponse:
            elapsed = int((time.perf_counter() - started) * 1000)
            return WebhookResponse(status=status, headers={}, latency_ms=elapsed, excerpt="", error=error)

        try:
            message = service_bus_message(message_id, body, headers)
        except (ValueError, TypeError) as error:
            return answered(None, f"the event cannot be sent to Service Bus: {error}"[:300])
        try:
            sender = await self._sender(destination)
            await asyncio.wait_for(sender.send_messages(message, timeout=timeout), timeout + 1)
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            await self._forget(destination)
            return answered(None, f"no answer within {timeout:g} s")
        except OperationTimeoutError:
            await self._forget(destination)
            return answered(None, f"Service Bus did not answer within {timeout:g} s")
        except Exception as error:  # every failure is an answer to judge; none may crash the worker
            await self._forget(destination)
            for kind, status, reason in _OUTCOMES:
                if isinstance(error, kind):
                    return answered(status, reason)
            detail = error.message if isinstance(error, AzureError) else str(error)
            return answered(None, f"{type(error).__name__}: {detail}"[:300])
        return answered(201)

    async def close(self) -> None:
        senders, self._senders = list(self._senders.values()), {}
        clients, self._clients = list(self._clients.values()), {}
        for sender in senders:
            await sender.close()
        for client in clients:
            await client.close()


def service_bus_message(message_id: str, body: bytes, headers: Mapping[str, str]) -> ServiceBusMessage:
    """One push as a Service Bus message: see the module's docstring."""
    event = json.loads(body)
    if not isinstance(event, dict):
        raise ValueError("the event is not a JSON object")
    properties: dict[str | bytes, Any] = {
        f"{ATTRIBUTE_PREFIX}{name}": value
        for name, value in event.items()
        if name not in _NOT_ATTRIBUTES and isinstance(value, str | int | bool)
    }
    properties.update({name: headers[name] for name in SIGNATURE_HEADERS if name in headers})
    event_type = event.get("type")
    return ServiceBusMessage(
        body=body,
        message_id=message_id,
        content_type=headers.get("content-type", CLOUDEVENTS_JSON),
        subject=event_type if isinstance(event_type, str) else None,
        application_properties=properties,
    )
