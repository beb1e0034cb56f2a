"""The Bus port: how Herald hands work from one pipeline stage to the next.

Producers describe a message once; adapters map it onto Azure Service Bus (in Azure) or onto
an Azure Storage queue (on Azurite, driven by devhost with Service Bus peek-lock semantics).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

PropertyValue = str | int | float | bool


@dataclass(frozen=True)
class OutgoingMessage:
    """One message for a queue. ``message_id`` is deterministic where duplicates must be detected."""

    body: bytes
    message_id: str
    content_type: str = "application/json"
    correlation_id: str | None = None
    subject: str | None = None
    application_properties: Mapping[str, PropertyValue] = field(default_factory=dict)
    # Delayed delivery: the message becomes visible at this time (UTC), never earlier.
    deliver_at: datetime | None = None


class Bus(Protocol):
    """Sends messages to a named queue. Returning means the messages are durably accepted."""

    async def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None: ...

    async def close(self) -> None: ...
