"""HTTP schemas of ``/api/v1/subscriptions``: what a client may send (unknown fields are refused) and
how a subscription is shown. The domain takes and gives value objects (``Filters``, ``Subscription``)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from shared.api.target_schemas import AuthenticationIn, DestinationIn
from shared.events.model import MAX_RESOURCE_LENGTH
from shared.notifications.event_orders import NotificationSpec, spec_problems
from shared.notifications.model import (
    ContentType,
    EmailTemplate,
    NotificationChannel,
    SendingTimePolicy,
    SmsTemplate,
)
from shared.subscriptions.changes import NOTIFICATION_NOT_ORDERED, SubscriptionChange
from shared.subscriptions.model import (
    MAX_FILTER_VALUES,
    FilterProblem,
    Filters,
    Ordering,
    Subscription,
    check_filter,
)
from shared.subscriptions.targets import Destination, EndpointAuthentication
from shared.urns import URN_PATTERN


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# A filter that takes a list as well as one value: an event matches any of the values.
FilterValues = str | Annotated[list[str], Field(min_length=1, max_length=MAX_FILTER_VALUES)]
SUBJECT_FILTER = f"Exact; a list of up to {MAX_FILTER_VALUES} matches any of them"
TYPE_FILTER = f"Exact, or a prefix ending in *; a list of up to {MAX_FILTER_VALUES} matches any of them"
INCLUDE_SUBUNITS = (
    "With a subjectFilter of organisations (org:<9 digits>): events about their subunits match too "
    "(the main unit as the contact registry knows it)"
)


def check_values(name: str, value: str | list[str] | None, *, prefix_allowed: bool) -> str | list[str] | None:
    """``check_filter`` for each value of a filter that takes a list; duplicates are dropped."""
    if value is None or isinstance(value, str):
        return check_filter(name, value, prefix_allowed=prefix_allowed)
    checked = [check_filter(name, one, prefix_allowed=prefix_allowed) for one in value]
    values = [one for one in checked if one is not None]
    if len(values) < len(checked):
        raise FilterProblem(f"'*' in {name} matches every event, so the whole list would; leave {name} out instead")
    return list(dict.fromkeys(values))


def _filter_value(value: str | list[str] | None) -> str | tuple[str, ...] | None:
    return tuple(value) if isinstance(value, list) else value


def check_endpoint_url(value: str | None) -> str | None:
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


def check_resource(value: str | None) -> str | None:
    if value is not None and not URN_PATTERN.match(value):
        raise ValueError("must be a resource URN such as urn:altinn:resource:skattemelding")
    return value


# The checked fields, one type each, so a create and a PATCH check them with the same code. The length
# bounds come before the check, so an empty or overlong value is refused as such, not as a bad URL/URN.
EndpointUrl = Annotated[str, Field(min_length=1, max_length=2048), AfterValidator(check_endpoint_url)]
ResourceFilter = Annotated[str, Field(min_length=1, max_length=MAX_RESOURCE_LENGTH), AfterValidator(check_resource)]
SourceFilter = Annotated[
    str, AfterValidator(lambda value: check_filter("sourceFilter", value, prefix_allowed=True, uri_like=True))
]
SubjectFilter = Annotated[
    FilterValues, AfterValidator(lambda value: check_values("subjectFilter", value, prefix_allowed=False))
]
AlternativeSubjectFilter = Annotated[
    str, AfterValidator(lambda value: check_filter("alternativeSubjectFilter", value, prefix_allowed=False))
]
TypeFilter = Annotated[
    FilterValues, AfterValidator(lambda value: check_values("typeFilter", value, prefix_allowed=True))
]


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

    end_point: EndpointUrl | None = Field(default=None, alias="endPoint", description="https URL of the webhook")
    resource_filter: ResourceFilter = Field(alias="resourceFilter")
    source_filter: SourceFilter | None = Field(
        default=None, alias="sourceFilter", description="Exact, or a prefix ending in *"
    )
    subject_filter: SubjectFilter | None = Field(default=None, alias="subjectFilter", description=SUBJECT_FILTER)
    alternative_subject_filter: AlternativeSubjectFilter | None = Field(default=None, alias="alternativeSubjectFilter")
    type_filter: TypeFilter | None = Field(default=None, alias="typeFilter", description=TYPE_FILTER)
    include_subunits: bool = Field(default=False, alias="includeSubunits", description=INCLUDE_SUBUNITS)
    # Instead of endPoint: each matching event becomes a notification order to its subject.
    notification: NotificationIn | None = Field(
        default=None, description="Notify the event's subject (person:/org:) by email or SMS instead of a webhook"
    )
    ordering: Ordering = Field(
        default=Ordering.NONE,
        description="`subject`: the events of one subject are pushed in log order, each after the previous one "
        "was delivered or dead-lettered; other subjects flow on. `none` (default): as fast as they come. "
        "Pushes only: a notification subscription takes `none`.",
    )
    # Instead of endPoint: a broker of the consumer's (shared/api/target_schemas.py).
    destination: DestinationIn | None = Field(
        default=None,
        description="Publish to an Azure Event Grid topic or a Service Bus queue or topic instead of a webhook",
    )
    authentication: AuthenticationIn | None = Field(
        default=None,
        description="What the endPoint's gateway asks for besides the signature: a bearer token as Herald's "
        "identity (entraToken) or up to 5 fixed headers, whose values are never shown again",
    )

    @model_validator(mode="after")
    def _one_target(self) -> SubscriptionRequest:
        if sum(target is not None for target in (self.end_point, self.destination, self.notification)) != 1:
            raise ValueError(
                "give exactly one of endPoint (a webhook), destination (an Event Grid topic, a Service Bus queue "
                "or topic) and notification (email/SMS to the subject)"
            )
        if self.authentication is not None and self.end_point is None:
            raise ValueError(
                "authentication applies to an endPoint; Herald publishes to a destination with its own identity"
            )
        if self.notification is not None and self.ordering is Ordering.SUBJECT:
            raise ValueError(NOTIFICATION_NOT_ORDERED)
        if self.notification is not None:
            problems = spec_problems(self.notification.spec(), self.resource_filter)
            if problems:
                raise ValueError("; ".join(f"{p.location}: {p.detail}" for p in problems))
        self.filters()  # FilterProblem (a ValueError) for filters that could never match together
        return self

    def notification_spec(self) -> NotificationSpec | None:
        return self.notification.spec() if self.notification is not None else None

    def destination_value(self) -> Destination | None:
        return self.destination.value() if self.destination is not None else None

    def authentication_value(self) -> EndpointAuthentication | None:
        return self.authentication.value() if self.authentication is not None else None

    def filters(self) -> Filters:
        return Filters(
            resource=self.resource_filter,
            source=self.source_filter,
            subject=_filter_value(self.subject_filter),
            alternativesubject=self.alternative_subject_filter,
            type=_filter_value(self.type_filter),
            include_subunits=self.include_subunits,
        )


# PATCH fields that are filters, by the ``Filters`` field they set.
_PATCH_FILTERS = {
    "resource_filter": "resource",
    "source_filter": "source",
    "subject_filter": "subject",
    "alternative_subject_filter": "alternativesubject",
    "type_filter": "type",
    "include_subunits": "include_subunits",
}
# PATCH fields that cannot be cleared: a subscription always has them.
_NOT_NULL = {
    "end_point": "endPoint",
    "resource_filter": "resourceFilter",
    "include_subunits": "includeSubunits",
    "notification": "notification",
    "ordering": "ordering",
    "destination": "destination",
}


class SubscriptionPatch(BaseModel):
    """``PATCH /api/v1/subscriptions/{id}``: only the fields given change, and a filter given as null is
    cleared. Each is checked as in a create; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=False)

    end_point: EndpointUrl | None = Field(
        default=None,
        alias="endPoint",
        description="A new webhook: the subscription is pending until it accepts the validation event",
    )
    resource_filter: ResourceFilter | None = Field(default=None, alias="resourceFilter")
    source_filter: SourceFilter | None = Field(
        default=None, alias="sourceFilter", description="Exact, or a prefix ending in *"
    )
    subject_filter: SubjectFilter | None = Field(default=None, alias="subjectFilter", description=SUBJECT_FILTER)
    alternative_subject_filter: AlternativeSubjectFilter | None = Field(default=None, alias="alternativeSubjectFilter")
    type_filter: TypeFilter | None = Field(default=None, alias="typeFilter", description=TYPE_FILTER)
    include_subunits: bool | None = Field(default=None, alias="includeSubunits", description=INCLUDE_SUBUNITS)
    notification: NotificationIn | None = Field(
        default=None, description="The notification a notification subscription orders, replaced as a whole"
    )
    ordering: Ordering | None = None
    destination: DestinationIn | None = Field(
        default=None,
        description="A new broker (the same kind of target): pending until the validation event is published",
    )
    authentication: AuthenticationIn | None = Field(
        default=None, description="What the endPoint's gateway asks for, replaced as a whole; null removes it"
    )

    @model_validator(mode="after")
    def _a_change(self) -> SubscriptionPatch:
        given = self.model_fields_set
        if not given:
            raise ValueError("give at least one field to change")
        for name, alias in _NOT_NULL.items():
            if name in given and getattr(self, name) is None:
                raise ValueError(f"{alias} cannot be null: a subscription always has one")
        return self

    def change(self) -> SubscriptionChange:
        given = self.model_fields_set
        return SubscriptionChange(
            filters={
                field: _filter_value(getattr(self, name)) for name, field in _PATCH_FILTERS.items() if name in given
            },
            endpoint=self.end_point,
            ordering=self.ordering,
            notification=self.notification.spec() if self.notification is not None else None,
            destination=self.destination.value() if self.destination is not None else None,
            authentication=self.authentication.value() if self.authentication is not None else None,
            authentication_given="authentication" in given,
        )


def subscription_view(subscription: Subscription, *, secret: str | None = None) -> dict[str, Any]:
    """The subscription as the API shows it; the secret only when it was just created or rotated."""
    view: dict[str, Any] = {
        "id": subscription.id,
        "endPoint": subscription.endpoint,
        "resourceFilter": subscription.filters.resource,
        "sourceFilter": subscription.filters.source,
        "subjectFilter": _shown(subscription.filters.subject),
        "alternativeSubjectFilter": subscription.filters.alternativesubject,
        "typeFilter": _shown(subscription.filters.type),
        "includeSubunits": subscription.filters.include_subunits,
        "consumer": subscription.consumer,
        "createdBy": subscription.consumer,
        "created": subscription.created.isoformat(),
        "status": subscription.status.value,
        "ordering": subscription.ordering.value,
    }
    if subscription.disabled_reason:
        view["disabledReason"] = subscription.disabled_reason
    if subscription.allowed_rate is not None:
        view["allowedRatePerMinute"] = subscription.allowed_rate
    if subscription.notification is not None:
        view["endPoint"] = None
        view["notification"] = subscription.notification.to_json()
    if subscription.destination is not None:  # its endpoint is an address, not a URL to call
        view["endPoint"] = None
        view["destination"] = subscription.destination.public()
    if subscription.authentication is not None:  # never the header values
        view["authentication"] = subscription.authentication.public()
    if secret is not None:
        view["secret"] = secret
    return view


def _shown(value: str | tuple[str, ...] | None) -> str | list[str] | None:
    return list(value) if isinstance(value, tuple) else value
