"""Local email and SMS sink: captures what would be sent and emits realistic delivery reports.

Used when HERALD_MODE=local and no ACS endpoint is configured. Captured messages are listed at
``GET /api/v1/dev/outbox``. Delivery reports are Event Grid-schema events POSTed (header
``aeg-event-type: Notification``) to ``{HERALD_LOCAL_EVENTGRID_URL}?functionName=email_delivery_report``
(or ``sms_delivery_report``) after a short delay, so devhost runs the whole lifecycle. devhost's
webhook, like the Functions host's, takes only callers with its ``eventgrid_extension`` system key:
the sink sends ``HERALD_LOCAL_EVENTGRID_KEY`` (devhost sets it for the app it hosts) as
``x-functions-key``.

Outcomes are chosen by the address (documented in docs/notifications.md):

- email local part ``bounce``/``suppressed``/``spam``/``quarantine``/``failed`` -> that report
  (``bounce@example.com`` -> Bounced); ``silent`` -> no report (shows Failed_TTL later);
  ``invalid`` -> refused at send (Failed_InvalidEmailFormat); ``throttle`` -> HTTP 429 on the
  first attempt (Retry-After 1 s); ``flaky`` -> a transient error on the first attempt.
- SMS numbers ending ``91`` -> report Failed; ``92`` -> refused at send (Failed_InvalidRecipient);
  ``93`` -> no report; ``94`` -> a transient error on the first attempt.
- everything else -> Delivered.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from shared.notifications.model import Status
from shared.notifications.ports import Captured, EmailMessage, SendResult, SmsMessage

log = logging.getLogger(__name__)

EMAIL_REPORT_TYPE = "Microsoft.Communication.EmailDeliveryReportReceived"
SMS_REPORT_TYPE = "Microsoft.Communication.SMSDeliveryReportReceived"
TOPIC = "/subscriptions/local/resourceGroups/local/providers/Microsoft.Communication/CommunicationServices/herald-local"
EMAIL_OUTCOMES = {
    "bounce": "Bounced",
    "suppressed": "Suppressed",
    "spam": "FilteredSpam",
    "quarantine": "Quarantined",
    "failed": "Failed",
}

ReportPoster = Callable[[str, list[dict[str, Any]]], Awaitable[None]]


_REPORT_ATTEMPTS = 12


def http_poster(base_url: str, key: str | None) -> ReportPoster:
    """Posts to the Event Grid webhook at ``base_url`` with the system ``key`` it requires."""
    headers = {"aeg-event-type": "Notification"}
    if key:
        headers["x-functions-key"] = key
    else:
        log.warning("HERALD_LOCAL_EVENTGRID_KEY is unset: devhost will refuse the local sink's delivery reports")

    async def post(function_name: str, events: list[dict[str, Any]]) -> None:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
            session.post(base_url, params={"functionName": function_name}, json=events, headers=headers) as response,
        ):
            if response.status >= 300:  # Event Grid retries what its subscriber did not accept; so does the sink
                raise RuntimeError(f"local delivery report answered {response.status}")

    return post


class LocalSink:
    """Implements both EmailSender and SmsSender."""

    def __init__(self, poster: ReportPoster | None, *, delay: float = 2.0, keep: int = 1000) -> None:
        self._poster = poster
        self._delay = delay
        self.outbox: deque[Captured] = deque(maxlen=keep)
        self._seen: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.email = _EmailSide(self)
        self.sms = _SmsSide(self)

    def captured(self, orderer: str | None = None) -> list[dict[str, Any]]:
        """The newest first; only ``orderer``'s when given."""
        return [asdict(item) for item in reversed(self.outbox) if orderer is None or item.orderer == orderer]

    def _first_time(self, notification_id: str) -> bool:
        if notification_id in self._seen:
            return False
        self._seen.add(notification_id)
        return True

    def _later(self, function_name: str, events: list[dict[str, Any]]) -> None:
        if self._poster is None:
            return
        poster = self._poster

        async def run() -> None:
            await asyncio.sleep(self._delay)
            # Event Grid retries a report its subscriber did not take (10 s, 30 s, 1 min, … for a day);
            # the sink retries on a shorter schedule of the same shape, for about eight minutes.
            for attempt in range(_REPORT_ATTEMPTS):
                try:
                    await poster(function_name, events)
                    return
                except Exception as error:
                    log.info("local delivery report not taken (attempt %s): %s", attempt + 1, error)
                    await asyncio.sleep(min(self._delay * 2**attempt, 60.0))
            log.warning("local delivery report dropped after %s attempts", _REPORT_ATTEMPTS)

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Waits for every scheduled report (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def send_email(self, message: EmailMessage) -> SendResult:
        local = message.to.split("@", 1)[0].lower()
        if local == "invalid":
            return SendResult.failed(Status.FAILED_INVALID_EMAIL_FORMAT, "local sink: invalid recipient")
        if local == "throttle" and self._first_time(message.notification_id):
            return SendResult.throttled(timedelta(seconds=1), "local sink: 429")
        if local == "flaky" and self._first_time(message.notification_id):
            return SendResult.transient("local sink: 503")
        reference = str(uuid.uuid4())
        outcome = "none" if local == "silent" else EMAIL_OUTCOMES.get(local, "Delivered")
        now = datetime.now(UTC).isoformat()
        self.outbox.append(
            Captured(
                "email", message.notification_id, reference, message.sender, message.to,
                message.subject, message.body, message.content_type.value, now, outcome, message.orderer,
            )
        )  # fmt: skip
        if outcome != "none":
            self._later("email_delivery_report", [email_report(reference, message.sender, message.to, outcome)])
        return SendResult.accepted(reference)

    async def send_sms(self, message: SmsMessage) -> SendResult:
        digits = message.to[-2:]
        if digits == "92":
            return SendResult.failed(Status.FAILED_INVALID_RECIPIENT, "local sink: invalid recipient")
        if digits == "94" and self._first_time(message.notification_id):
            return SendResult.transient("local sink: 503")
        reference = f"Outgoing_{uuid.uuid4().hex}"
        outcome = {"91": "Failed", "93": "none"}.get(digits, "Delivered")
        now = datetime.now(UTC).isoformat()
        self.outbox.append(
            Captured(
                "sms", message.notification_id, reference, message.sender, message.to,
                None, message.body, None, now, outcome, message.orderer,
            )
        )  # fmt: skip
        if outcome != "none":
            self._later(
                "sms_delivery_report",
                [sms_report(reference, message.sender, message.to, outcome, message.notification_id)],
            )
        return SendResult.accepted(reference)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()


class _EmailSide:
    def __init__(self, sink: LocalSink) -> None:
        self._sink = sink

    async def send(self, message: EmailMessage) -> SendResult:
        return await self._sink.send_email(message)

    async def close(self) -> None:
        await self._sink.close()


class _SmsSide:
    def __init__(self, sink: LocalSink) -> None:
        self._sink = sink

    async def send(self, message: SmsMessage) -> SendResult:
        return await self._sink.send_sms(message)

    async def close(self) -> None:
        return None


def email_report(message_id: str, sender: str, recipient: str, status: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    data: dict[str, Any] = {
        "sender": sender,
        "recipient": recipient,
        "messageId": message_id,
        "status": status,
        "deliveryStatusDetails": {"statusMessage": "" if status == "Delivered" else f"local sink: {status}"},
        "deliveryAttemptTimestamp": now,
    }
    if status != "Suppressed":
        data["internetMessageId"] = f"<{message_id}@herald.local>"
        data["deliveryStatusDetails"]["recipientMailServerHostName"] = "mx.herald.local"
    return {
        "id": str(uuid.uuid4()),
        "topic": TOPIC,
        "subject": f"sender/{sender}/message/{message_id}",
        "data": data,
        "eventType": EMAIL_REPORT_TYPE,
        "dataVersion": "1.0",
        "metadataVersion": "1",
        "eventTime": now,
    }


def sms_report(message_id: str, sender: str, to: str, status: str, tag: str | None = None) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "id": message_id,
        "topic": TOPIC,
        "subject": f"/phonenumber/{to.lstrip('+')}",
        "data": {
            "messageId": message_id,
            "from": sender,
            "to": to,
            "deliveryStatus": status,
            "deliveryStatusDetails": "No error." if status == "Delivered" else "local sink: failed",
            "receivedTimestamp": now,
            "deliveryAttempts": [
                {
                    "timestamp": now,
                    "segmentsSucceeded": int(status == "Delivered"),
                    "segmentsFailed": int(status != "Delivered"),
                }
            ],
            "tag": tag,
        },
        "eventType": SMS_REPORT_TYPE,
        "dataVersion": "1.0",
        "metadataVersion": "1",
        "eventTime": now,
    }
