"""SMS through a LINK Mobility-style HTTP gateway (JSON or PSWin-style XML), with basic authentication.

Send (JSON): ``POST {url}`` ``{"source", "destination", "userData", "refId"}`` -> 2xx
``{"messageId": "<gateway reference>"}``; a 4xx whose description starts with "Invalid RCV" is
an invalid recipient. Send (XML): ``<SESSION><CLIENT/><PW/><MSGLST><MSG><ID/><TEXT/><SND/><RCV/>
<RCPREQ>Y</RCPREQ></MSG></MSGLST></SESSION>`` -> ``<SESSION><LOGON>OK</LOGON><MSGLST><MSG><ID/>
<REF/><STATUS>OK|FAIL</STATUS><INFO/></MSG></MSGLST></SESSION>``.
429, 5xx and timeouts are transient (retried by delayed messages, no immediate retry: the
gateway is not hammered). Delivery reports: :func:`read_reports`, the callback's reader (the composition
root hands it to the reports use case).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from xml.sax.saxutils import escape

import aiohttp

from shared.notifications.model import Channel, Status
from shared.notifications.ports import DeliveryReport, SendResult, SmsMessage

STATES: dict[str, Status] = {
    "DELIVRD": Status.DELIVERED,
    "EXPIRED": Status.FAILED_EXPIRED,
    "DELETED": Status.FAILED_DELETED,
    "UNDELIV": Status.FAILED_UNDELIVERED,
    "REJECTD": Status.FAILED_REJECTED,
    "BARRED": Status.FAILED_BARRED_RECEIVER,
    "FAILED": Status.FAILED,
    "UNKNOWN": Status.FAILED,
}  # the gateway's report states (reference: Altinn's SmsSendResultMapper.cs)


def report_status(state: str | None) -> Status:
    return STATES.get((state or "").strip().upper(), Status.FAILED)


def _retry_after(headers: Any) -> timedelta | None:
    raw = headers.get("Retry-After")
    return timedelta(seconds=int(raw)) if raw and str(raw).isdigit() else None


def _refusal(info: str) -> SendResult:
    if info.strip().lower().startswith("invalid rcv"):
        return SendResult.failed(Status.FAILED_INVALID_RECIPIENT, info)
    return SendResult.failed(Status.FAILED, info or "the gateway refused the message")


class LinkSmsSender:
    def __init__(self, url: str, username: str, password: str, *, format: str = "json", timeout: float = 30.0) -> None:
        if format not in ("json", "xml"):
            raise ValueError("format is json or xml")
        self._url = url
        self._username = username
        self._password = password
        self._format = format
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            authorization = aiohttp.encode_basic_auth(self._username, self._password)
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers={"Authorization": authorization})
        return self._session

    async def send(self, message: SmsMessage) -> SendResult:
        try:
            if self._format == "xml":
                return await self._send_xml(message)
            return await self._send_json(message)
        except (aiohttp.ClientError, TimeoutError) as error:
            return SendResult.transient(f"gateway unreachable: {type(error).__name__}: {error}")

    async def _send_json(self, message: SmsMessage) -> SendResult:
        body = {
            "source": message.sender,
            "destination": message.to,
            "userData": message.body,
            "refId": message.notification_id,
        }
        async with self._client().post(self._url, json=body) as response:
            text = await response.text()
            if response.status == 429 or response.status >= 500:
                return SendResult.transient(f"gateway {response.status}", _retry_after(response.headers))
            try:
                document = json.loads(text) if text else {}
            except ValueError:
                document = {}
            if 200 <= response.status < 300 and document.get("messageId"):
                return SendResult.accepted(str(document["messageId"]))
            return _refusal(str(document.get("description") or text[:300]))

    async def _send_xml(self, message: SmsMessage) -> SendResult:
        body = (
            '<?xml version="1.0" encoding="utf-8"?><SESSION>'
            f"<CLIENT>{escape(self._username)}</CLIENT><PW>{escape(self._password)}</PW><MSGLST><MSG>"
            f"<ID>1</ID><TEXT>{escape(message.body)}</TEXT><SND>{escape(message.sender)}</SND>"
            f"<RCV>{escape(message.to.lstrip('+'))}</RCV><RCPREQ>Y</RCPREQ></MSG></MSGLST></SESSION>"
        )
        headers = {"Content-Type": "application/xml"}
        async with self._client().post(self._url, data=body.encode(), headers=headers) as response:
            text = await response.text()
            if response.status == 429 or response.status >= 500:
                return SendResult.transient(f"gateway {response.status}", _retry_after(response.headers))
            try:
                root = ElementTree.fromstring(text)
            except ElementTree.ParseError:
                return SendResult.transient(f"gateway answered {response.status} with no XML")
            if (root.findtext("LOGON") or "").upper() != "OK":
                return SendResult.failed(Status.FAILED, f"gateway logon: {root.findtext('REASON') or 'refused'}")
            msg = root.find("MSGLST/MSG")
            if msg is None:
                return SendResult.transient("gateway answered without a message result")
            if (msg.findtext("STATUS") or "").upper() == "OK" and msg.findtext("REF"):
                return SendResult.accepted(str(msg.findtext("REF")))
            return _refusal(msg.findtext("INFO") or "")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


@dataclass(frozen=True)
class GatewayReport:
    reference: str
    state: str
    receiver: str | None = None
    delivery_time: str | None = None


def parse_reports(body: bytes, content_type: str) -> list[GatewayReport]:
    """JSON (an object or an array of ``{reference, state, receiver, deliveryTime}``) or PSWin-style XML
    (``<MSGLST><MSG><REF/><RCV/><STATE/><DELIVERYTIME/></MSG>...</MSGLST>``). Raises ValueError."""
    media = content_type.split(";")[0].strip().lower()
    if media.endswith("json"):
        document = json.loads(body.decode("utf-8"))
        items = document if isinstance(document, list) else [document]
        reports = []
        for item in items:
            if not isinstance(item, dict) or not item.get("reference") or not item.get("state"):
                raise ValueError("each report needs reference and state")
            reports.append(
                GatewayReport(
                    str(item["reference"]), str(item["state"]), item.get("receiver"), item.get("deliveryTime")
                )
            )
        return reports
    if media in ("application/xml", "text/xml", "text/plain"):
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError as error:
            raise ValueError(f"not XML: {error}") from error
        messages = [root] if root.tag == "MSG" else root.findall(".//MSG")
        reports = []
        for msg in messages:
            reference, state = msg.findtext("REF"), msg.findtext("STATE")
            if not reference or not state:
                raise ValueError("each MSG needs REF and STATE")
            reports.append(GatewayReport(reference, state, msg.findtext("RCV"), msg.findtext("DELIVERYTIME")))
        return reports
    raise ValueError("send application/json or application/xml")


def read_reports(body: bytes, content_type: str) -> list[DeliveryReport]:
    """The callback's reports (a ``GatewayReportReader``). A dead report keeps the whole body when the
    callback carries one report, else the report as read. Raises ValueError."""
    reports = parse_reports(body, content_type)
    return [
        DeliveryReport(
            Channel.SMS,
            report.reference,
            report_status(report.state),
            body.decode("utf-8", "replace") if len(reports) == 1 else repr(report),
            report.state,
        )
        for report in reports
    ]
