"""Fixtures for event-driven notifications: the notification harness, residents, and helpers that
move events through fan-out and the notify stage as the Functions host would."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from azure.functions.servicebus import ServiceBusMessage

from shared.adapters.storage_queue_bus import decode_envelope
from shared.composition.root import Herald, Stores
from shared.composition.storage import QUEUES
from shared.events.dispatch import INBOUND_QUEUE, InboundMessage
from shared.messaging import Bus
from shared.notifications.messages import EMAIL_QUEUE, ORDERS_QUEUE, SMS_QUEUE, SendBatch, StartOrder
from shared.notifications.model import Channel
from shared.services import Services
from shared.subscriptions.delivery import Delivery
from shared.subscriptions.messages import (
    NOTIFY_QUEUE,
    OUTBOUND_QUEUE,
    VALIDATION_QUEUE,
    DeliveryBatch,
    ValidationMessage,
)
from shared.subscriptions.notification_target import EventNotifier, NotifyOutcome
from tests.notifications.conftest import (
    Harness,
    limits,  # noqa: F401  (the notification pipeline asks for it)
)
from tests.notifications.conftest import harness as notification_pipeline  # noqa: F401  (the harness below)
from tests.support.pipeline import clear, take

# Valid national identity numbers (mod-11), loaded into the contact registry by ``residents``.
KARI, OLA, PER = "01019010046", "15028510281", "22037510045"
SCOPES = ("events.subscribe", "notifications.order")


@pytest.fixture
async def harness(notification_pipeline: Harness, services: Services, stores: Stores) -> Harness:  # noqa: F811
    """The notification pipeline on Azurite, with the notify stage ordering through it: the pipeline
    replaces the services' notification feature, so the notifier built with them is rebuilt on it.
    The queues start empty: these tests drain them to the end, and the session's queues are shared
    (orders other suites left would be sent first, at their limits)."""
    await clear(stores, QUEUES)
    services.notifier = event_notifier(services, stores, stores.bus)
    return notification_pipeline


def event_notifier(services: Services, stores: Stores, bus: Bus) -> EventNotifier:
    """The notify stage, ordering through the services' notification feature and sending on ``bus``."""
    return EventNotifier(
        store=stores.subscription_store,
        event_log=stores.event_log,
        orders=services.notifications.orders,
        delivery_log=stores.delivery_log,
        clock=stores.clock,
        bus=bus,
    )


@pytest.fixture
async def residents(client: Any, issuer: Any) -> None:
    persons = [
        {"nationalIdentityNumber": KARI, "name": "Kari <Nordmann>", "emailAddress": "kari.nordmann@example.com"},
        {"nationalIdentityNumber": OLA, "name": "Ola Nordmann", "mobileNumber": "+4741234567"},
        {"nationalIdentityNumber": PER, "name": "Per Hansen", "emailAddress": "per@example.com", "reserved": True},
    ]
    response = await client.put(
        "/api/v1/admin/contacts/persons", json={"persons": persons}, headers=issuer.headers("admin")
    )
    assert response.status_code == 200, response.text


def organisation_number() -> str:
    """A random organisation number with a valid mod-11 check digit."""
    while True:
        first = f"{uuid.uuid4().int % 10**8:08d}"
        check = 11 - sum(int(d) * w for d, w in zip(first, (3, 2, 7, 6, 5, 4, 3, 2), strict=True)) % 11
        if check < 10:
            return first + str(check % 11)
        if check == 11:
            return first + "0"


@pytest.fixture
def consumer() -> str:
    return f"org:{organisation_number()}"


def notification(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "notificationChannel": "EmailPreferred",
        "emailTemplate": {
            "subject": "Report $data.signalId$: $data.statusText$",
            "body": "<p>Dear $recipientName$, $data.title$ is now $data.statusText$ ($type$, $subject$).</p>",
            "contentType": "Html",
        },
        "smsTemplate": {"body": "Report $data.signalId$: $data.statusText$"},
        "sendingTimePolicy": "Anytime",
    }
    body.update(overrides)
    return body


async def subscribe(client: Any, issuer: Any, consumer: str, payload: dict[str, Any], scopes=SCOPES) -> Any:
    return await client.post("/api/v1/subscriptions", json=payload, headers=issuer.headers(*scopes, sub=consumer))


def status_event(resource: str, subject: str, event_id: str, **data: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "urn:no:kommune:signalen:backend",
        "type": "signal.status.changed",
        "resource": resource,
        "subject": subject,
        "data": {"signalId": "SIG-1", "title": "Broken street light", "statusText": "In progress", **data},
    }


async def publish(client: Any, issuer: Any, events: list[dict[str, Any]], sub: str) -> None:
    response = await client.post(
        "/api/v1/events",
        json=events,
        headers={**issuer.headers("events.publish", sub=sub), "Content-Type": "application/cloudevents-batch+json"},
    )
    assert response.status_code == 202, response.text


async def queued(herald: Herald, queue: str, subscription_id: str) -> list[Delivery]:
    """The deliveries of one subscription waiting in ``queue``, taken off the queue."""

    def only_mine(body: bytes) -> bool:
        deliveries = DeliveryBatch.model_validate_json(body).deliveries()
        return bool(deliveries) and all(d.subscription_id == subscription_id for d in deliveries)

    bodies = await take(herald.stores, queue, only_mine, visibility_timeout=2)
    return [d for body in bodies for d in DeliveryBatch.model_validate_json(body).deliveries()]


Handler = Callable[[bytes], Awaitable[object]]


async def run_queues(herald: Herald, handlers: dict[str, Handler], *, idle_rounds: int = 2) -> int:
    """Like tests.support.pipeline.drain, with the stage handlers given directly: indexing the
    function app in-process here would make tests/infra's own indexing of it fail later."""
    handled = idle = 0
    for _ in range(200):
        progressed = False
        for queue, handler in handlers.items():
            client = herald.stores.bus.service.get_queue_client(queue)  # type: ignore[attr-defined]
            async for message in client.receive_messages(messages_per_page=32, visibility_timeout=30):
                await handler(decode_envelope(message.content).body)
                await client.delete_message(message)
                handled += 1
                progressed = True
        idle = 0 if progressed else idle + 1
        if idle >= idle_rounds:
            break
        if not progressed:
            await asyncio.sleep(0.05)
    return handled


def stage_handlers(herald: Herald) -> dict[str, Handler]:
    """The queue triggers' work, as functions/*.py do it (the notify trigger's own user function included)."""
    from functions import notify as notify_trigger

    services = herald.services
    feature = services.notifications

    async def inbound(body: bytes) -> None:
        message = InboundMessage.model_validate_json(body)
        await services.fanout.handle(message)

    async def outbound(body: bytes) -> None:
        await services.outbound.handle(DeliveryBatch.model_validate_json(body).deliveries())

    async def validation(body: bytes) -> None:
        await services.validation.validate(ValidationMessage.model_validate_json(body))

    trigger = notify_trigger.events_notify._function.get_user_function()

    async def notify_stage(body: bytes) -> None:
        await trigger(ServiceBusMessage(body=body, message_id="test", application_properties={}, user_properties={}))

    return {
        INBOUND_QUEUE: inbound,
        OUTBOUND_QUEUE: outbound,
        VALIDATION_QUEUE: validation,
        NOTIFY_QUEUE: notify_stage,
        ORDERS_QUEUE: lambda body: feature.starting.start(StartOrder.decode(body)),
        EMAIL_QUEUE: lambda body: feature.sending.send(Channel.EMAIL, SendBatch.decode(body)),
        SMS_QUEUE: lambda body: feature.sending.send(Channel.SMS, SendBatch.decode(body)),
    }


async def drain(herald: Herald, queues: tuple[str, ...]) -> int:
    handlers = stage_handlers(herald)
    return await run_queues(herald, {queue: handlers[queue] for queue in queues})


async def fan_out(herald: Herald) -> None:
    await drain(herald, (INBOUND_QUEUE,))


async def notify(herald: Herald, subscription_id: str) -> list[NotifyOutcome]:
    """Runs the notify stage on the subscription's queued deliveries (as functions/notify.py does)."""
    deliveries = await queued(herald, NOTIFY_QUEUE, subscription_id)
    return await herald.services.notifier.handle(deliveries)


__all__ = ["KARI", "OLA", "OUTBOUND_QUEUE", "PER", "harness"]
