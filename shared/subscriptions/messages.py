"""What the delivery queues carry: pointers, never payloads or secrets.

An outbound message carries up to ``MAX_DELIVERIES_PER_MESSAGE`` deliveries, each an
(subscription, event position) pair with its attempt count, so one queue operation serves many
deliveries. Events are read back from the log and subscriptions from the index by the worker.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.messaging import OutgoingMessage
from shared.subscriptions.delivery import Delivery

OUTBOUND_QUEUE = "events-outbound"
RETRY_QUEUE = "events-retry"
VALIDATION_QUEUE = "subscription-validation"
# Deliveries of notification subscriptions: the same batches, consumed by functions/notify.py.
NOTIFY_QUEUE = "events-notify"
MAX_DELIVERIES_PER_MESSAGE = 256


class DeliveryBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # [subscription key, subscription id, resource, seq, index, attempt, first attempt (epoch ms) or 0]
    d: list[tuple[str, str, str, int, int, int, int]] = Field(min_length=1)
    # The backfill these deliveries belong to; absent for live pushes (so their messages are unchanged).
    b: str | None = Field(default=None, min_length=1, max_length=64)
    # Per delivery of ``d``, the ordered lane it heads ("" for none); absent when no delivery is ordered.
    o: list[str] | None = None
    # Sent again by the ordered lanes' sweep (``Delivery.resent``); absent otherwise.
    r: bool | None = None

    @model_validator(mode="after")
    def _lanes_align(self) -> DeliveryBatch:
        if self.o is not None and len(self.o) != len(self.d):
            raise ValueError("o names one lane (or none) per delivery")
        return self

    def deliveries(self) -> list[Delivery]:
        lanes = self.o or [""] * len(self.d)
        return [
            Delivery(
                key,
                sid,
                resource,
                seq,
                index,
                attempt,
                datetime.fromtimestamp(first / 1000, UTC) if first else None,
                backfill=self.b,
                lane=lane or None,
                resent=bool(self.r),
            )
            for (key, sid, resource, seq, index, attempt, first), lane in zip(self.d, lanes, strict=True)
        ]


def delivery_message(
    deliveries: Sequence[Delivery],
    *,
    deliver_at: datetime | None = None,
    trace: dict[str, str] | None = None,
    occasion: datetime | None = None,
    resent: bool = False,
) -> OutgoingMessage:
    """A message of up to ``MAX_DELIVERIES_PER_MESSAGE`` deliveries (``resent``: by the ordered lanes' sweep).

    Its id is deterministic, so Service Bus duplicate detection drops a batch sent twice (fan-out
    after a crash). A batch queued again later is a new send, not a duplicate: it names its due
    time and its ``occasion`` (when the retry was settled or the replay asked for). Without that,
    the second deferral of the same deliveries within the detection window would be dropped and
    the deliveries lost.
    """
    backfills = {d.backfill for d in deliveries}
    if len(backfills) > 1:
        raise ValueError("a message carries the deliveries of one backfill at most")
    batch = DeliveryBatch(
        b=backfills.pop() if backfills else None,
        d=[
            (
                d.subscription_key,
                d.subscription_id,
                d.resource,
                d.seq,
                d.index,
                d.attempt,
                int(d.first_attempt_at.timestamp() * 1000) if d.first_attempt_at else 0,
            )
            for d in deliveries
        ],
        o=[d.lane or "" for d in deliveries] if any(d.lane for d in deliveries) else None,
        r=True if resent else None,
    )
    body = batch.model_dump_json(exclude_none=True).encode()
    distinct = "|".join(moment.isoformat() for moment in (deliver_at, occasion) if moment is not None)
    message_id = hashlib.sha256(body + distinct.encode()).hexdigest()[:40]
    return OutgoingMessage(body=body, message_id=message_id, deliver_at=deliver_at, application_properties=trace or {})


class ValidationMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    id: str
    attempt: int = 1
    first: datetime | None = None
    # Set on the deadline of a destination's validation code: the hash of the code that must have come back.
    awaiting: str | None = None


def validation_message(
    key: str,
    subscription_id: str,
    *,
    attempt: int = 1,
    first: datetime | None = None,
    deliver_at: datetime | None = None,
    awaiting: str | None = None,
) -> OutgoingMessage:
    body = (
        ValidationMessage(key=key, id=subscription_id, attempt=attempt, first=first, awaiting=awaiting)
        .model_dump_json(exclude_none=True)
        .encode()
    )
    if awaiting is not None:  # one deadline per code
        return OutgoingMessage(body=body, message_id=f"{subscription_id}-code-{awaiting[:16]}", deliver_at=deliver_at)
    # One id per attempt of one validation (``first``: when it began), so enabling a subscription again
    # within the duplicate detection window starts a validation instead of being dropped as a duplicate.
    began = f"-{int(first.timestamp() * 1000)}" if first is not None else ""
    return OutgoingMessage(body=body, message_id=f"{subscription_id}{began}-v{attempt}", deliver_at=deliver_at)
