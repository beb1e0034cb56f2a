"""Service Bus destinations at the SDK's sender interface: the message each push becomes (the CloudEvents
AMQP binding, the webhook-id as message id), and what Service Bus's refusals are answered as.

Service Bus cannot run here, so a stand-in ``ServiceBusClient`` (tests/support/service_bus_namespace.py)
takes the SDK's real ``ServiceBusMessage`` objects."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from azure.servicebus.exceptions import (
    MessagingEntityNotFoundError,
    ServiceBusAuthorizationError,
    ServiceBusConnectionError,
    ServiceBusServerBusyError,
)
from standardwebhooks import Webhook

from shared.adapters.servicebus_destination import ServiceBusDestinations
from shared.subscriptions.delivery import push_headers
from shared.subscriptions.model import new_secret
from shared.subscriptions.targets import Destination, DestinationKind
from tests.support.service_bus_namespace import Namespace

NAMESPACE = "contoso-events.servicebus.windows.net"
EVENT = {
    "specversion": "1.0",
    "id": "case-42",
    "source": "urn:no:example:case-system",
    "type": "no.example.case.created",
    "subject": "person:01017012343",
    "resource": "urn:altinn:resource:example-case",
    "time": "2026-11-21T12:00:00.123456Z",
    "datacontenttype": "application/json",
    "data": {"caseId": "42"},
}


def queue(name: str = "herald-events") -> Destination:
    return Destination.service_bus(DestinationKind.SERVICE_BUS_QUEUE, NAMESPACE, name)


def signed(secret: str, message_id: str, body: bytes) -> dict[str, str]:
    return push_headers(message_id, body, [secret], "herald.test", datetime.now(UTC))


async def test_a_push_is_one_structured_cloud_event_message_with_the_webhook_id_as_message_id():
    namespace, secret = Namespace(), new_secret()
    destinations = ServiceBusDestinations(namespace.client)  # type: ignore[arg-type]
    body = json.dumps(EVENT).encode()

    response = await destinations.publish(queue(), "msg_0123", body, signed(secret, "msg_0123", body), 5)

    assert response.status == 201 and response.error is None
    [message] = namespace.messages("queue:herald-events")
    assert namespace.name == NAMESPACE
    assert message.message_id == "msg_0123"  # what Service Bus's duplicate detection compares
    assert b"".join(message.body) == body  # the event as stored, byte for byte
    assert message.content_type == "application/cloudevents+json; charset=utf-8"
    assert message.subject == "no.example.case.created"
    properties = {str(k): v for k, v in (message.application_properties or {}).items()}
    assert {k: v for k, v in properties.items() if k.startswith("cloudEvents:")} == {
        f"cloudEvents:{name}": value
        for name, value in EVENT.items()
        if name not in ("data", "datacontenttype")  # the body holds them; the binding leaves them out
    }
    # The Standard Webhooks headers go along, so the receiver can tell Herald's messages from others'.
    Webhook(secret).verify(body, {k: str(v) for k, v in properties.items() if k.startswith("webhook-")})


async def test_queues_and_topics_get_one_sender_each_kept_while_it_works():
    namespace = Namespace()
    destinations = ServiceBusDestinations(namespace.client)  # type: ignore[arg-type]
    body = json.dumps(EVENT).encode()
    topic = Destination.service_bus(DestinationKind.SERVICE_BUS_TOPIC, NAMESPACE, "cases/created")
    for message_id in ("msg_1", "msg_2"):
        assert (
            await destinations.publish(queue(), message_id, body, signed(new_secret(), message_id, body), 5)
        ).status == 201
        assert (
            await destinations.publish(topic, message_id, body, signed(new_secret(), message_id, body), 5)
        ).status == 201
    assert [m.message_id for m in namespace.messages("queue:herald-events")] == ["msg_1", "msg_2"]
    assert [m.message_id for m in namespace.messages("topic:cases/created")] == ["msg_1", "msg_2"]
    assert namespace.clients == 1 and not any(sender.closed for sender in namespace.senders.values())
    await destinations.close()
    assert all(sender.closed for sender in namespace.senders.values())


@pytest.mark.parametrize(
    ("failure", "status", "said"),
    [
        (ServiceBusAuthorizationError(message="Unauthorized access"), 403, "Azure Service Bus Data Sender"),
        (MessagingEntityNotFoundError(message="no entity"), 404, "no such queue or topic"),
        (ServiceBusServerBusyError(message="busy"), 503, "busy"),
        (ServiceBusConnectionError(message="no route to namespace"), None, "no route to namespace"),
    ],
)
async def test_refusals_are_answered_as_a_webhook_would_and_the_sender_is_made_again(failure, status, said):
    namespace = Namespace(failures={"queue:herald-events": lambda n: failure if n == 1 else None})
    destinations = ServiceBusDestinations(namespace.client)  # type: ignore[arg-type]
    body = json.dumps(EVENT).encode()

    refused = await destinations.publish(queue(), "msg_a", body, signed(new_secret(), "msg_a", body), 5)
    assert refused.status == status and refused.error is not None and said in refused.error

    # The failed sender was closed and dropped: the next push makes a new one, which works.
    again = await destinations.publish(queue(), "msg_a", body, signed(new_secret(), "msg_a", body), 5)
    assert again.status == 201
    assert [m.message_id for m in namespace.messages("queue:herald-events")] == ["msg_a"]
