"""A stand-in for azure-servicebus's ``ServiceBusClient`` of one namespace, at its sender interface.

Service Bus cannot run here (its emulator needs Docker), so tests hand the adapter this client: it
makes a sender per queue or topic, as the SDK does, and records the SDK's real ``ServiceBusMessage``
objects sent. A test makes a sender fail as Service Bus would by giving it an exception to raise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from azure.servicebus import ServiceBusMessage


@dataclass
class Sender:
    entity: str
    sent: list[ServiceBusMessage] = field(default_factory=list)
    fail_with: Callable[[int], Exception | None] | None = None  # by send number (1-based)
    closed: bool = False
    sends: int = 0

    async def send_messages(self, message: ServiceBusMessage, *, timeout: float | None = None, **_: Any) -> None:
        self.sends += 1
        failure = self.fail_with(self.sends) if self.fail_with is not None else None
        if failure is not None:
            raise failure
        self.sent.append(message)

    async def close(self) -> None:
        self.closed = True


@dataclass
class Namespace:
    """Every client made for it shares its senders, as one namespace's entities are one."""

    name: str = ""
    senders: dict[str, Sender] = field(default_factory=dict)  # "queue:<name>" / "topic:<name>"
    failures: dict[str, Callable[[int], Exception | None]] = field(default_factory=dict)
    clients: int = 0

    def client(self, namespace: str) -> Client:
        self.name = namespace
        self.clients += 1
        return Client(self)

    def sender(self, key: str) -> Sender:
        sender = self.senders.get(key)
        if sender is None or sender.closed:  # a closed sender is made again, keeping what it sent
            sender = Sender(key, sent=sender.sent if sender else [], sends=sender.sends if sender else 0)
            sender.fail_with = self.failures.get(key)
            self.senders[key] = sender
        return sender

    def messages(self, key: str) -> list[ServiceBusMessage]:
        return self.senders[key].sent if key in self.senders else []


@dataclass
class Client:
    namespace: Namespace
    closed: bool = False

    def get_queue_sender(self, queue_name: str, **_: Any) -> Sender:
        return self.namespace.sender(f"queue:{queue_name}")

    def get_topic_sender(self, topic_name: str, **_: Any) -> Sender:
        return self.namespace.sender(f"topic:{topic_name}")

    async def close(self) -> None:
        self.closed = True
