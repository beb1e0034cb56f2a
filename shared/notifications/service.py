"""The notification feature as one object: what the API and the triggers call."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.notifications.config import NotificationSettings
from shared.notifications.model import Channel
from shared.notifications.orders import OrderService
from shared.notifications.ports import DeadReportStore, EmailSender, SmsSender
from shared.notifications.processing import Processor
from shared.notifications.senders import SenderGrantStore
from shared.notifications.status import email_report_status, gateway_report_status, sms_report_status
from shared.telemetry import record_report_refused

log = logging.getLogger(__name__)


def field(data: Mapping[str, Any], name: str) -> Any:
    """Event Grid payload fields, case-insensitively (ACS samples and real payloads disagree on casing)."""
    if name in data:
        return data[name]
    lowered = name.lower()
    for key, value in data.items():
        if key.lower() == lowered:
            return value
    return None


class ReportInvalid(Exception):
    """A delivery report Herald cannot read; it is parked, never retried."""


@dataclass
class Notifications:
    settings: NotificationSettings
    orders: OrderService
    processor: Processor
    dead_reports: DeadReportStore
    email: EmailSender
    sms: SmsSender
    sender_grants: SenderGrantStore  # what each orderer may send as (the admin API manages them)
    contacts: Any = None  # the table registry when contacts are loaded through the admin API
    sink: Any = None  # the local sink in local mode

    async def refuse_report(self, channel: Channel, event_id: str, payload: str, reason: str) -> str:
        """Parks a delivery-report event Herald cannot read (under its event id), logged and counted:
        a redelivery would be the same event, so the trigger returns and Event Grid stops retrying."""
        log.warning("delivery report refused", extra={"channel": channel.value, "event_id": event_id, "reason": reason})
        record_report_refused(channel.value, reason)
        await self.dead_reports.park(channel, f"event:{event_id}", payload, self.processor.clock.now(), reason)
        return "refused"

    async def email_delivery_report(self, data: Mapping[str, Any]) -> str:
        message_id = field(data, "messageId")
        payload = json.dumps(data, default=str)
        if not message_id:
            await self.dead_reports.park(Channel.EMAIL, "(none)", payload, self.processor.clock.now(), "NO_MESSAGE_ID")
            return "parked"
        status = email_report_status(field(data, "status"))
        details = field(data, "deliveryStatusDetails")
        description = field(details, "statusMessage") if isinstance(details, Mapping) else None
        return await self.processor.apply_report(
            Channel.EMAIL, str(message_id), status, payload, str(description) if description else None
        )

    async def sms_delivery_report(self, data: Mapping[str, Any]) -> str:
        message_id = field(data, "messageId")
        payload = json.dumps(data, default=str)
        if not message_id:
            await self.dead_reports.park(Channel.SMS, "(none)", payload, self.processor.clock.now(), "NO_MESSAGE_ID")
            return "parked"
        status = sms_report_status(field(data, "deliveryStatus"))
        details = field(data, "deliveryStatusDetails")
        return await self.processor.apply_report(
            Channel.SMS, str(message_id), status, payload, str(details) if details else None
        )

    async def gateway_report(self, reference: str, state: str, payload: str) -> str:
        return await self.processor.apply_report(Channel.SMS, reference, gateway_report_status(state), payload, state)

    async def close(self) -> None:
        await self.email.close()
        await self.sms.close()
