"""HTTP schemas of ``/api/v1/subscriptions``: what a client may send (unknown fields are refused) and
how a subscription is shown. The domain takes and gives value objects (``Filters``, ``Subscription``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.events.model import MAX_RESOURCE_LENGTH
from shared.notifications.event_orders import NotificationSpec, spec_problems
from shared.notifications.model import (
    ContentType,
    EmailTemplate,
    NotificationChannel,
    SendingTimePolicy,
    SmsTemplate,
)
from shared.subscriptions.model import Filters, Subscription, check_filter
from shared.urns import URN_PATTERN


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmailTemplateIn(_Strict):
    subject: str = Field(min_length=1, max_length=998)
    body: str = Field(min_length=1, max_length=200_000)
    contentType: ContentType = ContentType.PLAIN
    fromAddress: str | None = Field(default=None, max_length=254)


class SmsTemplateIn(_Strict):
    body: str = Field(min_length=1, max_length=10_000)
    senderNumber: str | None = Field(default=None, min_length=1, max_length=16)


class NotificationIn(_Strict):
    """``notification`` in ``POST /api/v1/subscriptions``: the order fields, as in an order."""

    notificationChannel: NotificationChannel
    emailTemplate: EmailTemplateIn | None = None
    smsTemplate: SmsTemplateIn | None = None
    sendingTimePolicy: SendingTimePolicy | None = None

    def spec(self) -> NotificationSpec:
        email, sms = self.emailTemplate, self.smsTemplate
        return NotificationSpec(
            channel=self.notificationChannel,
            email_template=EmailTemplate(email.subject, email.body, email.contentType, email.fromAddress)
            if email and self.notificationChannel.needs_email
            else None,
            sms_template=SmsTemplate(sms.body, sms.senderNumber)
            if sms and self.notificationChannel.needs_sms
            else None,
            sending_time_policy=self.sendingTimePolicy,
        )


class SubscriptionRequest(BaseModel):
    """``POST /api/v1/subscriptions``. Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=False)

    end_point: str | None = Field(
        default=None, alias="endPoint", min_length=1, max_length=2048, description="https URL of the webhook"
    )
    resource_filter: str = Field(alias="resourceFilter", min_length=1, max_length=MAX_RESOURCE_LENGTH)
    source_filter: str | None = Field(default=None, alias="sourceFilter", description="Exact, or a prefix ending in *")
    subject_filter: str | None = Field(default=None, alias="subjectFilter")
    alternative_subject_filter: str | None = Field(default=None, alias="alternativeSubjectFilter")
    type_filter: str | None = Field(default=None, alias="typeFilter", description="Exact, or a prefix ending in *")
    # Instead of endPoint: each matching event becomes a notification order to its subject.
    notification: NotificationIn | None = Field(
        default=None, description="Notify the event's subject (person:/org:) by email or SMS instead of a webhook"
    )

    @model_validator(mode="after")
    def _one_target(self) -> SubscriptionRequest:
        if (self.end_point is None) == (self.notification is None):
            raise ValueError("give exactly one of endPoint (a webhook) and notification (email/SMS to the subject)")
        if self.notification is not None:
            problems = spec_problems(self.notification.spec(), self.resource_filter)
            if problems:
                raise ValueError("; ".join(f"{p.location}: {p.detail}" for p in problems))
        return self

    def notification_spec(self) -> NotificationSpec | None:
        return self.notification.spec() if self.notification is not None else None

    @field_validator("end_point")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an absolute https URL")
        if parts.username or parts.password:
            raise ValueError("must not carry credentials")
        if parts.fragment:
            raise ValueError("must not have a fragment")
        try:
            _ = parts.port
        except ValueError as error:
            raise ValueError("has an invalid port") from error
        return value

    @field_validator("resource_filter")
    @classmethod
    def _resource(cls, value: str) -> str:
        if not URN_PATTERN.match(value):
            raise ValueError("must be a resource URN such as urn:altinn:resource:skattemelding")
        return value

    @field_validator("source_filter")
    @classmethod
    def _source(cls, value: str | None) -> str | None:
        return check_filter("sourceFilter", value, prefix_allowed=True, uri_like=True)

    @field_validator("type_filter")
    @classmethod
    def _type(cls, value: str | None) -> str | None:
        return check_filter("typeFilter", value, prefix_allowed=True)

    @field_validator("subject_filter", "alternative_subject_filter")
    @classmethod
    def _subjects(cls, value: str | None) -> str | None:
        return check_filter("subject filters", value, prefix_allowed=False)

    def filters(self) -> Filters:
        return Filters(
            resource=self.resource_filter,
            source=self.source_filter,
            subject=self.subject_filter,
            alternativesubject=self.alternative_subject_filter,
            type=self.type_filter,
        )


def subscription_view(subscription: Subscription, *, secret: str | None = None) -> dict[str, Any]:
    """The subscription as the API shows it; the secret only when it was just created or rotated."""
    view: dict[str, Any] = {
        "id": subscription.id,
        "endPoint": subscription.endpoint,
        "resourceFilter": subscription.filters.resource,
        "sourceFilter": subscription.filters.source,
        "subjectFilter": subscription.filters.subject,
        "alternativeSubjectFilter": subscription.filters.alternativesubject,
        "typeFilter": subscription.filters.type,
        "consumer": subscription.consumer,
        "createdBy": subscription.consumer,
        "created": subscription.created.isoformat(),
        "status": subscription.status.value,
    }
    if subscription.disabled_reason:
        view["disabledReason"] = subscription.disabled_reason
    if subscription.allowed_rate is not None:
        view["allowedRatePerMinute"] = subscription.allowed_rate
    if subscription.notification is not None:
        view["endPoint"] = None
        view["notification"] = subscription.notification.to_json()
    if secret is not None:
        view["secret"] = secret
    return view
