"""Email through Azure Communication Services (``azure-communication-email``, aio client).

``begin_send`` is called with ``operation_id`` = the notification id (ACS's idempotency and
correlation key; it comes back as ``messageId`` in the delivery report) and without polling:
the 202 means "accepted" (status Succeeded); delivery arrives later through Event Grid.
The SDK's own retries are off (``retry_total=0``): a 429 pauses all email sending through the
shared pause record and 5xx/timeouts are retried with delayed queue messages, never by a
sleeping worker.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from azure.core.credentials import AzureKeyCredential
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from shared.notifications.config import NotificationSettings
from shared.notifications.model import ContentType, Status
from shared.notifications.ports import EmailMessage, SendResult


def parse_connection_string(value: str) -> tuple[str, str]:
    """(endpoint with its scheme, access key). The SDK's own parser forces https, which rules out fakes."""
    parts = dict(element.partition("=")[::2] for element in value.split(";") if element)
    lowered = {key.strip().lower(): item.strip() for key, item in parts.items()}
    endpoint, key = lowered.get("endpoint"), lowered.get("accesskey")
    if not endpoint or not key:
        raise ValueError("an ACS connection string is endpoint=https://...;accesskey=...")
    return endpoint.rstrip("/"), key


def acs_credential(settings: NotificationSettings) -> tuple[str, Any]:
    """Communication Services' endpoint and credential: its connection string locally, the app's
    managed identity (``HeraldCommunication__*`` settings) in Azure. Email and SMS share them."""
    if settings.acs_connection_string:
        endpoint, key = parse_connection_string(settings.acs_connection_string)
        return endpoint, AzureKeyCredential(key)
    from shared.adapters.identity import credential_for
    from shared.config import Connection

    assert settings.acs_endpoint is not None
    connection = Connection("HeraldCommunication", None, dict(settings.acs_identity))
    return settings.acs_endpoint, credential_for(connection)


def retry_after(error: HttpResponseError, default: timedelta) -> timedelta:
    headers = getattr(getattr(error, "response", None), "headers", None) or {}
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        raw = headers.get(name)
        if raw and str(raw).isdigit():
            return timedelta(milliseconds=int(raw))
    raw = headers.get("Retry-After") or headers.get("retry-after")
    if raw and str(raw).strip().isdigit():
        return timedelta(seconds=int(str(raw).strip()))
    return default


def _error_code(error: HttpResponseError) -> str:
    code = getattr(getattr(error, "error", None), "code", None)
    if code:
        return str(code)
    try:
        body = json.loads(error.response.text()) if error.response is not None else {}
    except Exception:
        body = {}
    inner = body.get("error") if isinstance(body, dict) else None
    return str(inner.get("code", "")) if isinstance(inner, dict) else ""


class AcsEmailSender:
    def __init__(
        self,
        endpoint: str,
        credential: AzureKeyCredential | AsyncTokenCredential,
        *,
        default_retry_after: timedelta = timedelta(seconds=60),
    ) -> None:
        from azure.communication.email.aio import EmailClient

        self._client = EmailClient(endpoint, credential, retry_total=0, connection_timeout=10, read_timeout=30)
        self._default_retry_after = default_retry_after

    @classmethod
    def from_connection_string(cls, value: str) -> AcsEmailSender:
        endpoint, key = parse_connection_string(value)
        return cls(endpoint, AzureKeyCredential(key))

    async def send(self, message: EmailMessage) -> SendResult:
        content: dict[str, Any] = {"subject": message.subject}
        if message.content_type is ContentType.HTML:
            content["html"] = message.body
        else:
            content["plainText"] = message.body
        document = {
            "senderAddress": message.sender,
            "recipients": {"to": [{"address": message.to}]},
            "content": content,
            "userEngagementTrackingDisabled": True,
        }
        try:
            poller = await self._client.begin_send(document, operation_id=message.notification_id, polling=False)
            result = await poller.result()
        except HttpResponseError as error:
            return self._failure(error)
        except (ServiceRequestError, ServiceResponseError, TimeoutError) as error:
            return SendResult.transient(f"{type(error).__name__}: {error}")
        status = str((result or {}).get("status", "")).lower()
        if status == "failed":
            detail = (result or {}).get("error") or {}
            return SendResult.failed(Status.FAILED, str(detail.get("message") or "ACS refused the send"))
        return SendResult.accepted(str((result or {}).get("id") or message.notification_id))

    def _failure(self, error: HttpResponseError) -> SendResult:
        status = error.status_code or 0
        code = _error_code(error)
        if status == 429:
            return SendResult.throttled(retry_after(error, self._default_retry_after), f"ACS 429 {code}".strip())
        if status >= 500 or status in (408,):
            return SendResult.transient(f"ACS {status} {code}".strip())
        lowered = code.lower() + " " + str(error.message or "").lower()
        if "suppress" in lowered:
            return SendResult.failed(Status.FAILED_SUPPRESSED_RECIPIENT, f"ACS {status} {code}")
        if status == 400 and ("recipient" in lowered or "address" in lowered or "email" in lowered):
            return SendResult.failed(Status.FAILED_INVALID_EMAIL_FORMAT, f"ACS {status} {code}")
        return SendResult.failed(Status.FAILED, f"ACS {status} {code}: {error.message}")

    async def close(self) -> None:
        await self._client.close()
