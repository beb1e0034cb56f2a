"""The notification state machine, as data: which status may follow which, per channel.

Status only moves forward. A transition not in the table (including to the same status) is
refused and changes nothing, so applying a delivery report twice, or a late send result after
its delivery report, is harmless.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from shared.notifications.model import Channel, Notification, Status

S = Status

_EMAIL_DELIVERY_FAILURES = frozenset(
    {S.FAILED, S.FAILED_BOUNCED, S.FAILED_FILTERED_SPAM, S.FAILED_QUARANTINED, S.FAILED_SUPPRESSED_RECIPIENT}
)
_EMAIL_SEND_FAILURES = frozenset({S.FAILED, S.FAILED_INVALID_EMAIL_FORMAT, S.FAILED_SUPPRESSED_RECIPIENT})
_SMS_DELIVERY_FAILURES = frozenset(
    {S.FAILED, S.FAILED_EXPIRED, S.FAILED_DELETED, S.FAILED_UNDELIVERED, S.FAILED_REJECTED, S.FAILED_BARRED_RECEIVER}
)
_SMS_SEND_FAILURES = frozenset({S.FAILED, S.FAILED_INVALID_RECIPIENT, S.FAILED_REJECTED})
_LOOKUP_FAILURES = frozenset({S.FAILED_RECIPIENT_RESERVED, S.FAILED_RECIPIENT_NOT_IDENTIFIED})

TRANSITIONS: dict[Channel, dict[Status, frozenset[Status]]] = {
    Channel.EMAIL: {
        S.NEW: frozenset({S.SENDING, S.FAILED_TTL, S.FAILED_INVALID_EMAIL_FORMAT}) | _LOOKUP_FAILURES,
        S.SENDING: frozenset({S.SUCCEEDED, S.FAILED_TTL}) | _EMAIL_SEND_FAILURES,
        S.SUCCEEDED: frozenset({S.DELIVERED, S.FAILED_TTL}) | _EMAIL_DELIVERY_FAILURES,
    },
    Channel.SMS: {
        S.NEW: frozenset({S.SENDING, S.FAILED_TTL, S.FAILED_INVALID_RECIPIENT}) | _LOOKUP_FAILURES,
        S.SENDING: frozenset({S.ACCEPTED, S.FAILED_TTL}) | _SMS_SEND_FAILURES,
        S.ACCEPTED: frozenset({S.DELIVERED, S.FAILED_TTL}) | _SMS_DELIVERY_FAILURES,
    },
}

IN_PROGRESS: dict[Channel, frozenset[Status]] = {channel: frozenset(table) for channel, table in TRANSITIONS.items()}
STATUSES: dict[Channel, frozenset[Status]] = {
    channel: frozenset(table).union(*table.values()) for channel, table in TRANSITIONS.items()
}


def can_move(channel: Channel, current: Status, target: Status) -> bool:
    return target in TRANSITIONS[channel].get(current, frozenset())


def is_final(channel: Channel, status: Status) -> bool:
    return status not in IN_PROGRESS[channel]


def moved(notification: Notification, status: Status, now: datetime, **fields: object) -> Notification | None:
    """The notification with its new status, or None if the state machine refuses the step."""
    if not can_move(notification.channel, notification.status, status):
        return None
    return replace(notification, status=status, status_time=now, **fields)  # type: ignore[arg-type]


def event_type(channel: Channel, status: Status) -> str:
    """``herald.notification.email.delivered``, ``herald.notification.sms.failed.ttl``, ..."""
    head, _, detail = status.value.partition("_")
    suffix = head.lower() + (f".{detail.lower()}" if detail else "")
    return f"herald.notification.{channel.value}.{suffix}"
