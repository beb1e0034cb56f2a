"""Notification fixtures: Herald on the real Azurite, a controllable clock, the local sink capturing reports."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError

from shared.adapters.local_sink import LocalSink
from shared.adapters.table_send_pause import PAUSE_TABLE
from shared.clock import FixedClock
from shared.composition.notifications import build_notifications
from shared.composition.root import Stores
from shared.messaging import Bus, OutgoingMessage
from shared.notifications.config import NotificationConfig, NotificationSettings
from shared.notifications.limits import Limits
from shared.notifications.messages import EMAIL_QUEUE, ORDERS_QUEUE, SMS_QUEUE, SendBatch, StartOrder
from shared.notifications.model import Channel
from shared.services import Services
from tests.support.identities import random_org
from tests.support.pipeline import take

# A weekday noon in Oslo: inside the daytime window.
NOON = datetime(2026, 3, 4, 11, 0, tzinfo=UTC)
REPORT_USER, REPORT_PASSWORD = "gateway", "s3cret-report-password"


class RecordingBus:
    """Wraps the real bus (a port) to see what was sent, delays included."""

    def __init__(self, inner: Bus) -> None:
        self.inner = inner
        self.sent: list[tuple[str, OutgoingMessage]] = []

    async def send(self, queue: str, messages: Any) -> None:
        self.sent.extend((queue, m) for m in messages)
        await self.inner.send(queue, messages)

    async def close(self) -> None:
        await self.inner.close()


class Reports:
    """Delivery reports the local sink would POST to devhost's Event Grid webhook."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def post(self, function_name: str, events: list[dict[str, Any]]) -> None:
        self.events.extend((function_name, event) for event in events)


def grid_event(event: dict[str, Any]) -> func.EventGridEvent:
    return func.EventGridEvent(
        id=event["id"],
        data=event["data"],
        topic=event["topic"],
        subject=event["subject"],
        event_type=event["eventType"],
        event_time=None,
        data_version=event["dataVersion"],
    )


class Harness:
    def __init__(
        self,
        services: Services,
        stores: Stores,
        clock: FixedClock,
        sink: LocalSink,
        reports: Reports,
        bus: RecordingBus,
    ):
        self.services = services
        self.stores = stores
        self.clock = clock
        self.sink = sink
        self.reports = reports
        self.bus = bus

    @property
    def feature(self) -> Any:
        return self.services.notifications

    async def take(self, queue: str, order_id: str) -> list[bytes]:
        """Visible messages of ``queue`` for ``order_id``, read back from Azurite and deleted."""
        return await take(
            self.stores, queue, lambda body: json.loads(body).get("orderId") == order_id, visibility_timeout=1
        )

    async def run(self, order_id: str) -> None:
        """Drives the order through the queues as the Functions host would, until they are empty."""
        for _ in range(5):
            moved = 0
            for body in await self.take(ORDERS_QUEUE, order_id):
                await self.feature.starting.start(StartOrder.decode(body))
                moved += 1
            for queue, channel in ((EMAIL_QUEUE, Channel.EMAIL), (SMS_QUEUE, Channel.SMS)):
                for body in await self.take(queue, order_id):
                    await self.feature.sending.send(channel, SendBatch.decode(body))
                    moved += 1
            if not moved:
                return

    async def deliver_reports(self) -> None:
        """Feeds the sink's reports into the Event Grid-triggered functions' user functions."""
        from functions import delivery_reports

        await self.sink.drain()
        # The blueprint's functions themselves (indexing the whole app twice raises in azure-functions).
        by_name = {
            builder._function.get_function_name(): builder._function.get_user_function()
            for builder in (delivery_reports.email_delivery_report, delivery_reports.sms_delivery_report)
        }
        pending, self.reports.events = self.reports.events, []
        for name, event in pending:
            await by_name[name](grid_event(event))


@pytest.fixture
def limits() -> Limits:
    """The notification limits the harness applies; a test module overrides this fixture to lower them."""
    return Limits()


@pytest.fixture
async def harness(services: Services, stores: Stores, limits: Limits) -> AsyncIterator[Harness]:
    clock = FixedClock(NOON)
    reports = Reports()
    sink = LocalSink(reports.post, delay=0)
    bus = RecordingBus(stores.bus)
    config = NotificationConfig(retry_delays=(timedelta(seconds=1), timedelta(seconds=1)))
    settings = NotificationSettings(
        config=config, limits=limits, sms_report_username=REPORT_USER, sms_report_password=REPORT_PASSWORD
    )
    services.notifications = build_notifications(
        services.settings,
        stores.tables,
        bus,
        services.publisher,
        settings=settings,
        clock=clock,
        email=sink.email,
        sms=sink.sms,
        sink=sink,
        publishing=services.access.authorizer,
    )
    # Tests share one Azurite: start without another test's email pause.
    with contextlib.suppress(ResourceNotFoundError):
        await stores.tables.get_table_client(PAUSE_TABLE).delete_entity("pause", "email")
    yield Harness(services, stores, clock, sink, reports, bus)


@pytest.fixture
def sender() -> str:
    return random_org()


async def let_publish(services: Services, resource: str, *publishers: str) -> str:
    """Gives ``resource`` a policy that lets ``publishers`` publish into it (and name it in orders)."""
    from shared.identity.authorization import ResourcePolicy

    await services.access.policies.put(resource, ResourcePolicy(publishers=list(publishers)))
    await services.access.authorizer.changed()
    return resource


def order_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "idempotencyId": uuid.uuid4().hex,
        "sendersReference": "ref-1",
        "notificationChannel": "Email",
        "emailTemplate": {"subject": "Hello $recipientName$", "body": "Dear $recipientName$ ($recipientNumber$)"},
        "recipients": [{"emailAddress": "kari@example.com"}],
    }
    body.update(overrides)
    return body


async def post_order(client: httpx.AsyncClient, issuer: Any, sender: str, **overrides: Any) -> httpx.Response:
    return await client.post(
        "/api/v1/notifications/orders",
        json=order_body(**overrides),
        headers=issuer.headers("notifications.order", sub=sender),
    )


async def post_sms_order(
    client: httpx.AsyncClient,
    issuer: Any,
    sender: str,
    numbers: list[str],
    template: dict[str, Any] | None = None,
) -> httpx.Response:
    """An order of one SMS to each of ``numbers`` (``template`` defaults to the body "hei")."""
    return await post_order(
        client,
        issuer,
        sender,
        notificationChannel="Sms",
        emailTemplate=None,
        smsTemplate=template or {"body": "hei"},
        recipients=[{"mobileNumber": number} for number in numbers],
    )


async def status_of(client: httpx.AsyncClient, issuer: Any, sender: str, order_id: str) -> dict[str, Any]:
    response = await client.get(
        f"/api/v1/notifications/orders/{order_id}/status", headers=issuer.headers("notifications.order", sub=sender)
    )
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def statuses(document: dict[str, Any]) -> dict[str, str]:
    return {
        (n["recipient"].get("address") or next(iter(n["recipient"].values()))): n["sendStatus"]["status"]
        for n in document["notifications"]
    }
