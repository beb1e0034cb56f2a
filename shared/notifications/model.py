"""The notification domain's values: orders, notifications, channels and statuses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"


class NotificationChannel(StrEnum):
    """What the sender asks for (Altinn's ``notificationChannel``)."""

    EMAIL = "Email"
    SMS = "Sms"
    EMAIL_PREFERRED = "EmailPreferred"
    SMS_PREFERRED = "SmsPreferred"
    EMAIL_AND_SMS = "EmailAndSms"

    @property
    def needs_email(self) -> bool:
        return self is not NotificationChannel.SMS

    @property
    def needs_sms(self) -> bool:
        return self is not NotificationChannel.EMAIL


class ContentType(StrEnum):
    PLAIN = "Plain"
    HTML = "Html"


class SendingTimePolicy(StrEnum):
    ANYTIME = "Anytime"
    DAYTIME = "Daytime"


class OrderStatus(StrEnum):
    REGISTERED = "Registered"
    PROCESSING = "Processing"
    PROCESSED = "Processed"
    COMPLETED = "Completed"  # computed on read: processed and every notification final
    SEND_CONDITION_NOT_MET = "SendConditionNotMet"
    CANCELLED = "Cancelled"


class Status(StrEnum):
    """Altinn Notifications' result names; email and SMS share the common ones."""

    NEW = "New"
    SENDING = "Sending"
    SUCCEEDED = "Succeeded"  # email: ACS accepted the send (not final)
    ACCEPTED = "Accepted"  # SMS: the gateway accepted the message (not final)
    DELIVERED = "Delivered"
    FAILED = "Failed"
    FAILED_RECIPIENT_RESERVED = "Failed_RecipientReserved"
    FAILED_RECIPIENT_NOT_IDENTIFIED = "Failed_RecipientNotIdentified"
    FAILED_TTL = "Failed_TTL"
    # email only
    FAILED_INVALID_EMAIL_FORMAT = "Failed_InvalidEmailFormat"
    FAILED_SUPPRESSED_RECIPIENT = "Failed_SupressedRecipient"  # sic, as Altinn spells it
    FAILED_BOUNCED = "Failed_Bounced"
    FAILED_FILTERED_SPAM = "Failed_FilteredSpam"
    FAILED_QUARANTINED = "Failed_Quarantined"
    # SMS only
    FAILED_INVALID_RECIPIENT = "Failed_InvalidRecipient"
    FAILED_BARRED_RECEIVER = "Failed_BarredReceiver"
    FAILED_DELETED = "Failed_Deleted"
    FAILED_EXPIRED = "Failed_Expired"
    FAILED_UNDELIVERED = "Failed_Undelivered"
    FAILED_REJECTED = "Failed_Rejected"


@dataclass(frozen=True)
class EmailTemplate:
    subject: str
    body: str
    content_type: ContentType = ContentType.PLAIN
    from_address: str | None = None
    # Keyword values filled at send time with the recipient's (an event's, for an order made from one).
    values: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The template as an order names it (``emailTemplate``), without its keyword values."""
        return {
            "subject": self.subject,
            "body": self.body,
            "contentType": self.content_type.value,
            "fromAddress": self.from_address,
        }


@dataclass(frozen=True)
class SmsTemplate:
    body: str
    sender_number: str | None = None
    values: Mapping[str, str] = field(default_factory=dict)  # as EmailTemplate.values

    def to_json(self) -> dict[str, Any]:
        """The template as an order names it (``smsTemplate``), without its keyword values."""
        return {"body": self.body, "senderNumber": self.sender_number}


@dataclass(frozen=True)
class RecipientSpec:
    """One recipient as ordered: exactly one identifier is set."""

    email_address: str | None = None
    mobile_number: str | None = None
    national_identity_number: str | None = None
    organization_number: str | None = None

    def to_json(self) -> dict[str, str]:
        pairs = {
            "emailAddress": self.email_address,
            "mobileNumber": self.mobile_number,
            "nationalIdentityNumber": self.national_identity_number,
            "organizationNumber": self.organization_number,
        }
        return {key: value for key, value in pairs.items() if value is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RecipientSpec:
        return cls(
            email_address=data.get("emailAddress"),
            mobile_number=data.get("mobileNumber"),
            national_identity_number=data.get("nationalIdentityNumber"),
            organization_number=data.get("organizationNumber"),
        )

    @property
    def label(self) -> str:
        return (
            self.national_identity_number
            or self.organization_number
            or self.email_address
            or self.mobile_number
            or "(none)"
        )


@dataclass(frozen=True)
class RecipientLookup:
    """The order-time lookup result returned in the 202 (Altinn's ``recipientLookup``)."""

    status: str  # Success | PartialSuccess | Failed
    is_reserved: list[str] = field(default_factory=list)
    missing_contact: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "isReserved": self.is_reserved, "missingContact": self.missing_contact}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RecipientLookup:
        return cls(data["status"], list(data.get("isReserved", [])), list(data.get("missingContact", [])))


@dataclass
class Order:
    id: str
    creator: str
    idempotency_id: str
    senders_reference: str | None
    requested_send_time: datetime
    channel: NotificationChannel
    email_template: EmailTemplate | None
    sms_template: SmsTemplate | None
    recipients: list[RecipientSpec]
    ignore_reservation: bool
    resource_id: str | None
    condition_endpoint: str | None
    sending_time_policy: SendingTimePolicy | None
    created: datetime
    status: OrderStatus = OrderStatus.REGISTERED
    status_time: datetime | None = None
    lookup: RecipientLookup | None = None
    processing_started: datetime | None = None
    version: str | None = None  # the store's concurrency token (an ETag)

    def policy_for(self, channel: Channel) -> SendingTimePolicy:
        """SMS defaults to Daytime, email to Anytime; an explicit policy applies to both channels."""
        if self.sending_time_policy is not None:
            return self.sending_time_policy
        return SendingTimePolicy.DAYTIME if channel is Channel.SMS else SendingTimePolicy.ANYTIME


@dataclass(frozen=True)
class Transition:
    """One step of a notification's status history: the status it moved to, when, and why."""

    status: Status
    at: datetime
    description: str | None = None


@dataclass
class Notification:
    id: str
    order_id: str
    channel: Channel
    status: Status
    status_time: datetime
    address: str | None  # email address or E.164 number; None when no contact point was found
    recipient: RecipientSpec  # who the sender named (a person, an organisation or the address itself)
    name: str | None = None  # for $recipientName$
    organization_number: str | None = None  # for $recipientNumber$
    description: str | None = None
    reference: str | None = None  # ACS operation/message id or gateway reference
    attempt: int = 0
    # Transient send failures so far (a 429 pause is not one): bounded by the retry schedule.
    failures: int = 0
    expiry: datetime | None = None
    version: str | None = None
    # The statuses it went through, oldest first (bounded: see status.HISTORY_LENGTH); the store writes
    # each step with the change that makes it.
    history: tuple[Transition, ...] = ()

    @property
    def final(self) -> bool:
        from shared.notifications.status import is_final

        return is_final(self.channel, self.status)
