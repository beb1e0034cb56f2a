"""What the notification queues carry: which order to start, which notifications to send.

The bodies are JSON with the field names and key order of the messages already queued, so a message
written before a deploy still decodes after it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.messaging import OutgoingMessage
from shared.notifications.model import Channel

ORDERS_QUEUE = "notifications-orders"
EMAIL_QUEUE = "notifications-email"
SMS_QUEUE = "notifications-sms"
QUEUES = (ORDERS_QUEUE, EMAIL_QUEUE, SMS_QUEUE)
QUEUE_OF = {Channel.EMAIL: EMAIL_QUEUE, Channel.SMS: SMS_QUEUE}


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    creator: str
    order_id: str = Field(validation_alias="orderId", serialization_alias="orderId")


class StartOrder(_Message):
    """Body of a notifications-orders message."""

    attempt: int = 0

    def encode(self) -> bytes:
        return json.dumps(self.model_dump(by_alias=True)).encode()

    @classmethod
    def decode(cls, body: bytes) -> StartOrder:
        return cls.model_validate_json(body)


def start_message(
    creator: str, order_id: str, at: datetime | None, attempt: int = 0, tag: str = "start"
) -> OutgoingMessage:
    return OutgoingMessage(
        body=StartOrder(creator=creator, order_id=order_id, attempt=attempt).encode(),
        message_id=f"{order_id}:{tag}:{attempt}",
        correlation_id=order_id,
        deliver_at=at,
    )


class SendBatch(_Message):
    """Body of a notifications-email / notifications-sms message: up to ``batch_size`` notifications."""

    ids: list[str]
    attempt: int = 0

    def encode(self) -> bytes:
        return json.dumps(self.model_dump(by_alias=True), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, body: bytes) -> SendBatch:
        return cls.model_validate_json(body)

    def message(self, channel: Channel, at: datetime | None, tag: str = "") -> OutgoingMessage:
        digest = hashlib.sha256("|".join(self.ids).encode()).hexdigest()[:16]
        return OutgoingMessage(
            body=self.encode(),
            message_id=f"{self.order_id}:{channel.value}:{digest}:{self.attempt}{tag}",
            correlation_id=self.order_id,
            deliver_at=at,
        )
