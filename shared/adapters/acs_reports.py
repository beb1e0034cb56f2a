"""ACS delivery reports as Event Grid delivers them: the event data read into a DeliveryReport.

``Microsoft.Communication.EmailDeliveryReportReceived`` (``messageId``, ``status``,
``deliveryStatusDetails.statusMessage``) and ``Microsoft.Communication.SMSDeliveryReportReceived``
(``messageId``, ``deliveryStatus``, ``deliveryStatusDetails``). The status values map as Altinn's
Wolverine/Utils.cs and SmsSendResultMapper.cs do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from shared.notifications.model import Channel, Status
from shared.notifications.ports import DeliveryReport

S = Status
EMAIL_REPORT: dict[str, Status] = {
    "delivered": S.DELIVERED,
    "bounced": S.FAILED_BOUNCED,
    "suppressed": S.FAILED_SUPPRESSED_RECIPIENT,
    "filteredspam": S.FAILED_FILTERED_SPAM,
    "quarantined": S.FAILED_QUARANTINED,
    "failed": S.FAILED,
    "expanded": S.FAILED,
}
SMS_REPORT: dict[str, Status] = {"delivered": S.DELIVERED, "failed": S.FAILED}


def field(data: Mapping[str, Any], name: str) -> Any:
    """Event Grid payload fields, case-insensitively (ACS samples and real payloads disagree on casing)."""
    if name in data:
        return data[name]
    lowered = name.lower()
    for key, value in data.items():
        if key.lower() == lowered:
            return value
    return None


def email_report_status(value: str | None) -> Status:
    """Any value other than Delivered is a failure (Microsoft's rule); unknown values are plain Failed."""
    return EMAIL_REPORT.get((value or "").strip().lower(), S.FAILED)


def sms_report_status(value: str | None) -> Status:
    return SMS_REPORT.get((value or "").strip().lower(), S.FAILED)


def read_event_report(channel: Channel, data: Mapping[str, Any]) -> DeliveryReport:
    """The report in an ACS delivery-report event's data (an ``EventReportReader``)."""
    message_id = field(data, "messageId")
    details = field(data, "deliveryStatusDetails")
    if channel is Channel.EMAIL:
        status = email_report_status(field(data, "status"))
        message = field(details, "statusMessage") if isinstance(details, Mapping) else None
        description = str(message) if message else None
    else:
        status = sms_report_status(field(data, "deliveryStatus"))
        description = str(details) if details else None
    return DeliveryReport(
        channel, str(message_id) if message_id else None, status, json.dumps(data, default=str), description
    )
