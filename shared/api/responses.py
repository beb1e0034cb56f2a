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


class DestinationView(_Body):
    """An Event Grid topic (``topicEndpoint``) or a Service Bus queue or topic (``namespace``, ``name``)."""

    type: Literal["eventGridTopic", "serviceBusQueue", "serviceBusTopic"]
    topicEndpoint: str | None = None
    namespace: str | None = None
    name: str | None = None


class AuthenticationView(_Body):
    """A bearer token for ``audience`` (``entraToken``), or custom headers, shown by name only."""

    type: Literal["entraToken", "headers"]
    audience: str | None = None
    headerNames: list[str] | None = None
    valuesHidden: bool | None = Field(default=None, description="Always true: header values are never shown")


class SubscriptionView(_Body):
    """A subscription; ``secret`` only in the answer that created or rotated it."""

    id: str = Field(description="sub_ and 32 hex digits")
    endPoint: str | None = Field(description="The webhook; null for a destination or notification subscription")
    resourceFilter: str
    sourceFilter: str | None
    subjectFilter: str | list[str] | None = Field(description="One subject, or a list (sorted) of which any matches")
    alternativeSubjectFilter: str | None
    typeFilter: str | list[str] | None = Field(
        description="One type or prefix, or a list (sorted) of which any matches"
    )
    includeSubunits: bool = Field(
        default=False, description="Events about the subject organisations' subunits match too"
    )
    consumer: str
    createdBy: str
    created: str = Field(description="ISO 8601")
    status: Literal["pending", "active", "disabled"]
    ordering: Literal["none", "subject"] = Field(
        default="none", description="`subject`: one subject's events are pushed in log order"
    )
    disabledReason: str | None = None
    allowedRatePerMinute: int | None = Field(
        default=None, description="The request rate the endpoint granted in the validation handshake"
    )
    notification: dict[str, object] | None = Field(
        default=None, description="The notification a notification subscription orders, as created"
    )
    destination: DestinationView | None = Field(
        default=None, description="The broker a destination subscription publishes to (endPoint is null)"
    )
    authentication: AuthenticationView | None = Field(
        default=None, description="What the endPoint's gateway gets besides the signature; header values never"
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


class SubscriptionTestResult(_Body):
    """What one test push came to (it is not retried, logged or counted in the health figures)."""

    eventId: str = Field(description="The id of the herald.subscription.test event pushed")
    webhookId: str = Field(description="Its webhook-id header")
    at: str = Field(description="ISO 8601: when it was signed and sent")
    delivered: bool = Field(description="The endpoint answered 2xx")
    statusCode: int | None = Field(description="The endpoint's answer; null when none came")
    latencyMs: int
    error: str | None = Field(description="Why it was not delivered: the connection error, timeout or answer")
    responseExcerpt: str | None = Field(description="The first 1 KiB of the endpoint's answer")


class HealthWindow(_Body):
    delivered: int = Field(description="Attempts the endpoint answered 2xx")
    failed: int = Field(description="Attempts that failed: another answer, a timeout, a refused address")
    successRate: float | None = Field(description="delivered / (delivered + failed); null without attempts")
    p50LatencyMs: int | None = Field(description="Median answer time, within 10 %; null without answers")
    p95LatencyMs: int | None = Field(description="95th percentile answer time, within 10 %")


class HealthPoint(HealthWindow):
    """One bucket of a health series: a clock hour (`hourly`) or a ten-minute slot (`recent`)."""

    start: str = Field(
        description="RFC 3339 (UTC, `Z`): the start of the clock hour, or in `recent` of the ten-minute slot"
    )


class HealthOutcome(_Body):
    at: str = Field(description="ISO 8601")
    statusCode: int | None
    latencyMs: int
    outcome: str = Field(description="As in the delivery log: delivered, retry, dead, gone, refused")
    error: str | None = None


class CircuitView(_Body):
    state: Literal["open", "closed"] = Field(
        description="`open` from when an outbound worker's circuit breaker opened for the endpoint until a push succeeds"
    )
    openedAt: str | None = Field(description="ISO 8601")


class SubscriptionHealthView(_Body):
    """Delivery figures of a subscription: counted by each outbound worker and written every few seconds."""

    subscriptionId: str
    status: Literal["pending", "active", "disabled"]
    asOf: str = Field(description="ISO 8601")
    lastHour: HealthWindow = Field(description="From the start of the ten-minute slot an hour ago")
    lastDay: HealthWindow = Field(description="From the start of the clock hour 24 hours ago")
    last14Days: HealthWindow = Field(description="From the start of the clock hour 14 days ago")
    hourly: list[HealthPoint] = Field(
        description="`lastDay` by clock hour, oldest first: 25 points, the hour 24 hours ago to the current one so "
        "far, every hour present (0 attempts, null rate and latencies when there were none)"
    )
    recent: list[HealthPoint] = Field(
        description="`lastHour` by ten-minute slot, oldest first: 7 points, the slot an hour ago to the current one "
        "so far, every slot present"
    )
    retriesWaiting: int = Field(description="Deliveries queued for a retry and not yet taken")
    deadLetters: int = Field(description="Dead letters waiting for a replay (counted up to 10,000)")
    deadLettersCapped: bool = Field(description="true: there are more than `deadLetters`")
    lastSuccess: HealthOutcome | None
    lastFailure: HealthOutcome | None
    failingSince: str | None = Field(description="ISO 8601: every delivery has failed since then")
    circuit: CircuitView


class BackfillView(_Body):
    """A backfill and its progress."""

    id: str = Field(description="bf_ and 32 hex digits")
    subscriptionId: str
    state: Literal["running", "completed", "cancelled", "failed"] = Field(
        description="`running` until the range is scanned and every matched event was pushed, failed or dropped"
    )
    from_: str = Field(alias="from", description="Read cursor: the range begins after it")
    to: str = Field(description="Read cursor: the range ends with it (follow it with GET /api/v1/events)")
    position: str = Field(description="Read cursor: how far the scan has come")
    scanComplete: bool
    scanned: int = Field(description="Events of the range read so far")
    matched: int = Field(description="Events that match the filters and the consumer may receive: queued for pushing")
    unauthorized: int = Field(description="Events that match the filters but the consumer may not receive: not pushed")
    pushed: int = Field(description="Accepted by the endpoint")
    failed: int = Field(description="Dead-lettered (replayable), refused, or unauthorized at push time")
    dropped: int = Field(description="Not pushed: cancelled, or the subscription or event is gone")
    created: str = Field(description="ISO 8601")
    updated: str = Field(description="ISO 8601: the scan's last step")
    reason: str | None = Field(default=None, description="Why it was cancelled or failed")


# ------------------------------------------------------------------------------- administration


class PolicyView(ResourcePolicy):
    model_config = ConfigDict(extra="allow")

    resource: str


class PolicyPage(_Body):
    count: int
    policies: list[PolicyView] = Field(description="In the order of their stored keys (the escaped resource)")


class ResourceAccessView(_Body):
    resource: str
    publish: bool
    read: Literal["all", "some", "none", "unknown"] = Field(
        description="all: every event (an owner); some: the events about the caller or parties it holds a role for"
    )
    subscribe: Literal["all", "some", "none", "unknown"]


class AccessibleResources(_Body):
    authorization: Literal["local", "pdp"] = Field(description="Who decides: Herald's policies, or an external PDP")
    complete: bool = Field(
        description="False with an external PDP (only Herald's own resources are listed), or when there are more "
        "policies than Herald looks at for this list (10,000)"
    )
    resources: list[ResourceAccessView]


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
    parentOrganizationNumber: str | None = Field(default=None, description="A subunit's main unit")


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


class OrderSummaryView(_Body):
    id: str
    created: str = Field(description="ISO 8601")
    notificationChannel: str
    processingStatus: ProcessingStatus
    sendersReference: str | None
    requestedSendTime: str | None = Field(description="ISO 8601")
    resourceId: str | None
    recipientCount: int = Field(description="The recipients the order names")


class OrderSummaryPage(_Body):
    count: int
    orders: list[OrderSummaryView] = Field(description="Newest first")


class NotificationRecipient(Recipient):
    address: str | None = Field(default=None, description="The contact point the notification went to")


class SendStatus(_Body):
    status: str
    description: str | None
    lastUpdate: str | None = Field(description="ISO 8601")


class StatusStep(_Body):
    status: str
    at: str = Field(description="ISO 8601")
    description: str | None


class NotificationView(_Body):
    id: str
    channel: Literal["email", "sms"]
    recipient: NotificationRecipient
    sendStatus: SendStatus
    history: list[StatusStep] = Field(
        description="The statuses it went through, oldest first (the last 20), up to the provider's delivery report"
    )


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
