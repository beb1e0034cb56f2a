"""SMS through Azure Communication Services (``azure-communication-sms``, aio client).

Delivery reports arrive through Event Grid (``Microsoft.Communication.SMSDeliveryReportReceived``),
matched by the ACS message id; ``tag`` carries the notification id for humans reading reports.
"""

from __future__ import annotations

from datetime import timedelta

from azure.core.credentials import AzureKeyCredential
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from shared.adapters.acs_email import parse_connection_string, retry_after
from shared.notifications.model import Status
from shared.notifications.ports import SendResult, SmsMessage


class AcsSmsSender:
    def __init__(self, endpoint: str, credential: AzureKeyCredential | AsyncTokenCredential) -> None:
        from azure.communication.sms.aio import SmsClient

        self._client = SmsClient(endpoint, credential, retry_total=0, connection_timeout=10, read_timeout=30)

    @classmethod
    def from_connection_string(cls, value: str) -> AcsSmsSender:
        endpoint, key = parse_connection_string(value)
        return cls(endpoint, AzureKeyCredential(key))

    async def send(self, message: SmsMessage) -> SendResult:
        try:
            results = await self._client.send(
                from_=message.sender,
                to=[message.to],
                message=message.body,
                enable_delivery_report=True,
                tag=message.notification_id,
            )
        except HttpResponseError as error:
            status = error.status_code or 0
            if status == 429 or status >= 500:
                return SendResult.transient(f"ACS SMS {status}", retry_after(error, timedelta(seconds=60)))
            return SendResult.failed(Status.FAILED, f"ACS SMS {status}: {error.message}")
        except (ServiceRequestError, ServiceResponseError, TimeoutError) as error:
            return SendResult.transient(f"{type(error).__name__}: {error}")
        result = results[0]
        if result.successful and result.message_id:
            return SendResult.accepted(result.message_id)
        code = result.http_status_code or 0
        if code == 429 or code >= 500:
            return SendResult.transient(f"ACS SMS {code}: {result.error_message}")
        if code == 400:
            return SendResult.failed(Status.FAILED_INVALID_RECIPIENT, result.error_message)
        return SendResult.failed(Status.FAILED, f"ACS SMS {code}: {result.error_message}")

    async def close(self) -> None:
        await self._client.close()
