"""The JSON bodies the API answers with, as the OpenAPI document names them.

Routes build these bodies from the domain (``subscription_view``, ``order_json`` …) and return them as
they are; the models give the document and generated clients a type for each. The schemathesis
suite validates every response against them, so a model that drifts from its body fails there.
Unknown members are allowed, so a client keeps working when a body gains a field.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.identity.authorization import ResourcePolicy
from shared.notifications.ports import Captured


class _Body(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class Health(_Body):
    status: Literal["ok"]


# ------------------------------------------------------------------------------- subscriptions


class SubscriptionView(_Body):
    """A subscription; ``secret`` only in the answer that created or rotated it."""

    id: str = Field(description="sub_ and 32 hex digits")
    endPoint: str | None = Field(description="The webhook; null for a notification subscription")
    resourceFilter: str
    sourceFilter: str | None
    subjectFilter: str | None
    alternativeSubjectFilter: str | None
    typeFilter: str | None
    consumer: str
    createdBy: str
    created: str = Field(description="ISO 8601")
    status: Literal["pending", "active", "disabled"]
    disabledReason: str | None = None
    allowedRatePerMinute: int | None = Field(
        default=None, description="The request rate the endpoint granted in the validation handshake"
    )
    notification: dict[str, object] | None = Field(
        default=None, description="The notification a notification subscription orders, as created"
    )
    secret: str | None = Field(default=None, description="The signing secret (whsec_…), shown only this once")


class SubscriptionPage(_Body):
    count: int
    subscriptions: list[SubscriptionView]


class DeliveryAttempt(_Body):
    subscriptionId: str
    deliveryId: str = Field(description="Stable across retries: the webhook-id header")
    eventId: str
    attempt: int
    at: str = Field(description="ISO 8601")
    statusCode: int | None = Field(description="The endpoint's answer; null when none came")
    latencyMs: int
    outcome: str
    error: str | None = None
    responseExcerpt: str | None = None


class DeliveryPage(_Body):
    count: int
    deliveries: list[DeliveryAttempt]


class DeadLetterView(_Body):
    subscriptionId: str
    deliveryId: str
    resource: str
    seq: int
    index: int
    eventId: str
    attempts: int
    firstAttemptAt: str = Field(description="ISO 8601")
    deadAt: str = Field(description="ISO 8601")
    lastStatus: int | None
    lastError: str | None


class DeadLetterPage(_Body):
    count: int
    deadLetters: list[DeadLetterView]


class Replayed(_Body):
    replayed: int = Field(description="Dead letters queued again")


# ------------------------------------------------------------------------------- administration


class PolicyView(ResourcePolicy):
    model_config = ConfigDict(extra="allow")

    resource: str


class RoleView(_Body):
    party: str
    holder: str
    role: str


class HeldRole(_Body):
    party: str
    role: str
    delegated: bool


class HeldRoles(_Body):
    holder: str
    grants: list[HeldRole]


class DelegationView(_Body):
    from_party: str = Field(alias="from")
    to: str
    roles: list[str]


class SenderGrantsView(_Body):
    orderer: str
    emailAddresses: list[str]
    emailDomains: list[str]
    smsSenders: list[str]


class SenderGrantsList(_Body):
    grants: list[SenderGrantsView]


class Stored(_Body):
    stored: int = Field(description="Records written")


class PersonView(_Body):
    nationalIdentityNumber: str
    name: str | None
    emailAddress: str | None
    mobileNumber: str | None
    reserved: bool


class RoleHolderView(_Body):
    nationalIdentityNumber: str
    name: str | None
    emailAddress: str | None
    mobileNumber: str | None


class OrganizationRoleView(_Body):
    name: str
    resources: list[str]
    holders: list[RoleHolderView]


class OrganizationView(_Body):
    organizationNumber: str
    name: str | None
    emailAddresses: list[str]
    mobileNumbers: list[str]
    roles: list[OrganizationRoleView]


# ------------------------------------------------------------------------------- notifications


class RecipientLookup(_Body):
    status: str = Field(description="Success, PartialSuccess or Failed")
    isReserved: list[str]
    missingContact: list[str]


class OrderAccepted(_Body):
    orderId: str
    recipientLookup: RecipientLookup | None


class Recipient(_Body):
    emailAddress: str | None = None
    mobileNumber: str | None = None
    nationalIdentityNumber: str | None = None
    organizationNumber: str | None = None


class EmailTemplateView(_Body):
    subject: str
    body: str
    contentType: str
    fromAddress: str | None


class SmsTemplateView(_Body):
    body: str
    senderNumber: str | None


class ProcessingStatus(_Body):
    status: str
    lastUpdate: str | None = Field(description="ISO 8601")


class OrderView(_Body):
    id: str
    creator: str
    idempotencyId: str
    sendersReference: str | None
    requestedSendTime: str | None
    created: str | None
    notificationChannel: str
    ignoreReservation: bool
    resourceId: str | None
    conditionEndpoint: str | None
    sendingTimePolicy: str | None
    recipients: list[Recipient]
    processingStatus: ProcessingStatus
    emailTemplate: EmailTemplateView | None = None
    smsTemplate: SmsTemplateView | None = None


class NotificationRecipient(Recipient):
    address: str | None = Field(default=None, description="The contact point the notification went to")


class SendStatus(_Body):
    status: str
    description: str | None
    lastUpdate: str | None = Field(description="ISO 8601")


class NotificationView(_Body):
    id: str
    channel: Literal["email", "sms"]
    recipient: NotificationRecipient
    sendStatus: SendStatus


class ChannelCounts(_Body):
    generated: int
    succeeded: int
    delivered: int
    failed: int
    byStatus: dict[str, int]


class OrderStatusReport(_Body):
    orderId: str
    sendersReference: str | None
    processingStatus: ProcessingStatus
    counts: dict[str, ChannelCounts] = Field(description="Per channel (email, sms) with notifications")
    notifications: list[NotificationView]


class ReportOutcomes(_Body):
    """How many of the reports changed a notification, changed nothing, or were parked."""

    model_config = ConfigDict(extra="allow")

    applied: int
    unchanged: int
    parked: int


class Outbox(_Body):
    messages: list[Captured] = Field(description="Newest first")
