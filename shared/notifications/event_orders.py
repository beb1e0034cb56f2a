"""Event-born orders: what a notification subscription's ``notification`` holds, how it is checked
against the order rules, and how a matching event becomes an order request.

A notification subscription carries templates instead of a webhook. Each matching event becomes an
order (``shared.notifications.orders``) for the event's subject (``person:<11 digits>`` or
``org:<9 digits>``), so every rule of orders applies: validation, recipient lookup at send time,
reservations, sending hours, status events.

Event keywords: ``$<attribute>$`` for the event's attributes (``$id$``, ``$source$``, ``$type$``,
``$subject$``, ``$time$``, ``$resource$``, ``$alternativesubject$`` and extension attributes) and
``$data.<field>$`` for top-level fields of a JSON object ``data``. A known keyword the event lacks
becomes empty; any other ``$…$`` text is left as written. ``$recipientName$`` and
``$recipientNumber$`` keep their meaning.

An order made from an event keeps the subscription's templates as written and carries the event
values they name; at send time each template is filled once from those and the recipient's values
(``shared.notifications.templates``), so an event value that itself reads ``$recipientName$`` is
sent as written. Values are HTML-escaped in ``Html`` email bodies only; an email subject is one line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from shared.events.model import event_key_hash
from shared.notifications.config import NotificationConfig
from shared.notifications.model import (
    ContentType,
    EmailTemplate,
    NotificationChannel,
    RecipientSpec,
    SendingTimePolicy,
    SmsTemplate,
)
from shared.notifications.orders import FieldProblem, OrderRequest, validate
from shared.notifications.templates import fill
from shared.urns import NOTIFICATIONS_URN

# Attributes a template may name even when an event lacks them (they then render empty).
CONTEXT_ATTRIBUTES = frozenset(
    {"id", "source", "type", "subject", "time", "resource", "alternativesubject", "specversion", "datacontenttype"}
)
# An event keyword between dollar signs. The lookahead also finds overlapping candidates (the b of
# "$a$b$"), so no value a template might name is left behind; filling then replaces whole keywords.
_KEYWORD = re.compile(r"\$(data\.[A-Za-z0-9_-]{1,64}|[a-z0-9]{1,20})(?=\$)")
_PERSON = re.compile(r"^person:(\d{11})$")
_ORG = re.compile(r"^org:(\d{9})$")


@dataclass(frozen=True)
class NotificationSpec:
    """A subscription's ``notification``: the order fields it applies to every matching event."""

    channel: NotificationChannel
    email_template: EmailTemplate | None = None
    sms_template: SmsTemplate | None = None
    sending_time_policy: SendingTimePolicy | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"notificationChannel": self.channel.value}
        if self.email_template is not None:
            t = self.email_template
            body["emailTemplate"] = {
                "subject": t.subject,
                "body": t.body,
                "contentType": t.content_type.value,
                "fromAddress": t.from_address,
            }
        if self.sms_template is not None:
            body["smsTemplate"] = {"body": self.sms_template.body, "senderNumber": self.sms_template.sender_number}
        body["sendingTimePolicy"] = self.sending_time_policy.value if self.sending_time_policy else None
        return body

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NotificationSpec:
        email = data.get("emailTemplate")
        sms = data.get("smsTemplate")
        policy = data.get("sendingTimePolicy")
        return cls(
            channel=NotificationChannel(data["notificationChannel"]),
            email_template=EmailTemplate(
                email["subject"],
                email["body"],
                ContentType(email.get("contentType") or "Plain"),
                email.get("fromAddress"),
            )
            if email
            else None,
            sms_template=SmsTemplate(sms["body"], sms.get("senderNumber")) if sms else None,
            sending_time_policy=SendingTimePolicy(policy) if policy else None,
        )

    def canonical(self) -> str:
        """A stable text of the spec: two identical creates are the same subscription."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))


def _request(spec: NotificationSpec, *, idempotency_id: str, senders_reference: str | None,
             recipient: RecipientSpec, resource_id: str | None) -> OrderRequest:  # fmt: skip
    return OrderRequest(
        idempotency_id=idempotency_id,
        senders_reference=senders_reference,
        requested_send_time=None,
        channel=spec.channel,
        email_template=spec.email_template,
        sms_template=spec.sms_template,
        recipients=[recipient],
        resource_id=resource_id,
        sending_time_policy=spec.sending_time_policy,
    )


def spec_problems(spec: NotificationSpec, resource: str) -> list[FieldProblem]:
    """The order rules applied at subscription time: templates per channel, SMS length, sender
    address, and the resource as the orders' ``resourceId``. Locations are ``notification.…``."""
    trial = _request(
        spec,
        idempotency_id="subscription",
        senders_reference=None,
        recipient=RecipientSpec(national_identity_number="00000000000"),
        resource_id=resource,
    )
    problems: list[FieldProblem] = []
    for problem in validate(trial, datetime.now(UTC), NotificationConfig()):
        location = "resourceFilter" if problem.location == "resourceId" else f"notification.{problem.location}"
        problems.append(FieldProblem(location, problem.detail))
    return problems


# ------------------------------------------------------------------------------ event → order


class NotNotifiable(Exception):
    """The event cannot become an order for this subscription (the message says why)."""


def recipient_of(subject: object) -> RecipientSpec:
    if isinstance(subject, str):
        if match := _PERSON.match(subject):
            return RecipientSpec(national_identity_number=match.group(1))
        if match := _ORG.match(subject):
            return RecipientSpec(organization_number=match.group(1))
    raise NotNotifiable("the event's subject is not person:<11 digits> or org:<9 digits>")


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def keyword_values(event: Mapping[str, Any]) -> dict[str, str]:
    values = {name: _text(value) for name, value in event.items() if name not in ("data", "data_base64")}
    data = event.get("data")
    if isinstance(data, Mapping):
        values.update({f"data.{name}": _text(value) for name, value in data.items()})
    return values


def named_values(values: Mapping[str, str], *texts: str) -> dict[str, str]:
    """The event keywords ``texts`` name, with their values: a known keyword the event lacks is
    empty; a name that is no event keyword is left out (its ``$…$`` text stays as written)."""
    named: dict[str, str] = {}
    for text in texts:
        for name in _KEYWORD.findall(text):
            if name in values:
                named[name] = values[name]
            elif name in CONTEXT_ATTRIBUTES or name.startswith("data."):
                named[name] = ""
    return named


def fill_event(text: str, values: Mapping[str, str]) -> str:
    """``text`` filled from an event's values alone (the recipient keywords stay as written)."""
    return fill(text, named_values(values, text))


def render_for_event(spec: NotificationSpec, event: Mapping[str, Any]) -> NotificationSpec:
    """The spec's templates as written, each carrying the event values it names (filled at send time)."""
    values = keyword_values(event)
    email = spec.email_template
    if email is not None:
        email = replace(email, values=named_values(values, email.subject, email.body))
    sms = spec.sms_template
    if sms is not None:
        sms = replace(sms, values=named_values(values, sms.body))
    return NotificationSpec(spec.channel, email, sms, spec.sending_time_policy)


def idempotency_id(subscription_id: str, event: Mapping[str, Any]) -> str:
    """One order per (subscription, event): a redelivered event never notifies twice."""
    return f"event:{subscription_id}:{event_key_hash(str(event.get('source')), str(event.get('id')))}"


def order_for_event(subscription_id: str, spec: NotificationSpec, event: Mapping[str, Any]) -> OrderRequest:
    """The order an event makes: to its subject, referenced by the event id, on the event's resource
    (so the order's status events land where the publisher reads)."""
    # Events Herald publishes about notifications never notify anyone (no loops through the hub).
    if event.get("source") == NOTIFICATIONS_URN:
        raise NotNotifiable("Herald's own notification status events never notify")
    recipient = recipient_of(event.get("subject"))
    resource = event.get("resource")
    return _request(
        render_for_event(spec, event),
        idempotency_id=idempotency_id(subscription_id, event),
        senders_reference=_text(event.get("id"))[:200] or None,
        recipient=recipient,
        resource_id=resource if isinstance(resource, str) else None,
    )
