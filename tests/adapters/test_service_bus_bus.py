"""The Service Bus adapter at the SDK's sender interface: batching, scheduling, and properties.

Service Bus cannot run here (its emulator needs Docker), so the test stands in for the
``ServiceBusClient``/``ServiceBusSender`` of azure-servicebus and uses the SDK's real
``ServiceBusMessageBatch`` and ``ServiceBusMessage``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from azure.servicebus import ServiceBusMessage, ServiceBusMessageBatch

from shared.adapters.service_bus import ServiceBusBus
from shared.config import read_connection
from shared.messaging import OutgoingMessage


class Sender:
    def __init__(self) -> None:
        self.batches: list[list[ServiceBusMessage]] = []
        self.scheduled: list[tuple[ServiceBusMessage, datetime]] = []
        self.closed = False

    async def create_message_batch(self) -> ServiceBusMessageBatch:
        return ServiceBusMessageBatch(max_size_in_bytes=4096)

    async def send_messages(self, batch: ServiceBusMessageBatch) -> None:
        self.batches.append(list(batch._messages))

    async def schedule_messages(self, message: ServiceBusMessage, at: datetime) -> list[int]:
        self.scheduled.append((message, at))
        return [1]

    async def close(self) -> None:
        self.closed = True


class Client:
    def __init__(self) -> None:
        self.senders: dict[str, Sender] = {}
        self.closed = False

    def get_queue_sender(self, queue: str) -> Sender:
        return self.senders.setdefault(queue, Sender())

    async def close(self) -> None:
        self.closed = True


async def test_messages_are_batched_within_the_size_limit_and_keep_their_properties():
    client = Client()
    bus = ServiceBusBus(client)  # type: ignore[arg-type]
    messages = [
        OutgoingMessage(
            body=b"x" * 1000,
            message_id=f"m{i}",
            correlation_id="c",
            subject="s",
            application_properties={"traceparent": "00-a-b-01"},
        )
        for i in range(9)
    ]
    await bus.send("events-outbound", messages)
    sender = client.senders["events-outbound"]
    assert len(sender.batches) >= 3  # 9 KB of bodies in 4 KB batches
    sent = [m for batch in sender.batches for m in batch]
    assert [m.message_id for m in sent] == [f"m{i}" for i in range(9)]
    assert sent[0].correlation_id == "c" and sent[0].subject == "s"
    assert sent[0].application_properties == {b"traceparent": "00-a-b-01"} or sent[0].application_properties == {
        "traceparent": "00-a-b-01"
    }
    assert b"".join(sent[0].body) == b"x" * 1000


async def test_delayed_messages_are_scheduled_for_their_time():
    client = Client()
    bus = ServiceBusBus(client)  # type: ignore[arg-type]
    due = datetime.now(UTC) + timedelta(minutes=5)
    await bus.send("events-retry", [OutgoingMessage(body=b"{}", message_id="later", deliver_at=due)])
    [(message, at)] = client.senders["events-retry"].scheduled
    assert at == due and message.message_id == "later"
    assert message.scheduled_enqueue_time_utc == due
    await bus.close()
    assert client.closed and client.senders["events-retry"].closed


def test_identity_connection_needs_the_namespace():
    connection = read_connection("ServiceBusConnection", {"ServiceBusConnection__credential": "managedidentity"})
    try:
        ServiceBusBus.from_connection(connection)
    except RuntimeError as error:
        assert "fullyQualifiedNamespace" in str(error)
    else:
        raise AssertionError("a namespace is required")
