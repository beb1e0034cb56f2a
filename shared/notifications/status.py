"""The notification state machine, as data: which status may follow which, per channel.

Status only moves forward. A transition not in the table (including to the same status) is
refused and changes nothing, so applying a delivery report twice, or a late send result after
its delivery report, is harmless.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from shared.notifications.model import Channel, Notification, Status, Transition

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


HISTORY_LENGTH = 20  # the transitions a notification keeps: a normal life has 3 or 4
HISTORY_DESCRIPTION_LENGTH = 200


def step_of(notification: Notification) -> Transition:
    """The notification's current status as a history step."""
    description = (notification.description or "")[:HISTORY_DESCRIPTION_LENGTH] or None
    return Transition(notification.status, notification.status_time, description)


def with_history(old: Notification | None, new: Notification) -> Notification:
    """``new`` with its history: ``old``'s and, when the status moved (or there is no ``old``: a new
    notification), the step to the new status; the oldest steps beyond ``HISTORY_LENGTH`` go."""
    if old is not None and old.status is new.status:
        return replace(new, history=old.history)
    before = old.history if old is not None else ()
    if old is not None and not before:  # stored before notifications kept a history: its status so far
        before = (step_of(old),)
    return replace(new, history=(*before, step_of(new))[-HISTORY_LENGTH:])


def recorded(
    decide: Callable[[Notification], Notification | None],
) -> Callable[[Notification], Notification | None]:
    """``decide`` writing each status move to the notification's history: every change a use case
    hands the store goes through it, so any store only persists what it is given."""

    def deciding(notification: Notification) -> Notification | None:
        new = decide(notification)
        return None if new is None else with_history(notification, new)

    return deciding


def history_of(notification: Notification) -> tuple[Transition, ...]:
    """The history to show: the stored one, or the current status alone when none was stored."""
    return notification.history or (step_of(notification),)


def event_type(channel: Channel, status: Status) -> str:
    """``herald.notification.email.delivered``, ``herald.notification.sms.failed.ttl``, ..."""
    head, _, detail = status.value.partition("_")
    suffix = head.lower() + (f".{detail.lower()}" if detail else "")
    return f"herald.notification.{channel.value}.{suffix}"
