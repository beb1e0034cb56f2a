"""An order of 1,000 recipients while the provider fails transiently, throttles with 429, and delivery
reports arrive early (before the send result is stored) and twice: every notification ends in
exactly one final status, and the hub got exactly one final-status event for each."""

from __future__ import annotations

import contextlib
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError

from shared.adapters.local_sink import LocalSink
from shared.adapters.table_send_pause import PAUSE_TABLE
from shared.clock import FixedClock
from shared.composition.notifications import build_notifications
from shared.notifications.config import NotificationConfig, NotificationSettings
from shared.notifications.model import Channel, Status
from shared.notifications.ports import EmailMessage, SendResult
from shared.notifications.reports import ReportNotMatched
from shared.notifications.status import is_final
from tests.notifications.conftest import NOON, RecordingBus, Reports, grid_event, order_body
from tests.reliability.figures import record_figures


def address(i: int) -> str:
    kind = i % 10
    local = {0: "flaky", 1: "throttle", 2: "bounce", 3: "silent", 4: "failed"}.get(kind, f"person{i}")
    return f"{local}@r{i}.example.com"


class EarlyReports:
    """Wraps the sink's email side: each report is delivered at once, before Herald stores the send
    result (so it misses, as Event Grid's early reports do), and kept to be delivered again later."""

    def __init__(self, sink: LocalSink, reports: Reports) -> None:
        self.sink, self.reports = sink, reports
        self.deliver: Any = None
        self.later: list[tuple[str, dict[str, Any]]] = []
        self.early_misses = 0

    async def send(self, message: EmailMessage) -> SendResult:
        result = await self.sink.email.send(message)
        await self.sink.drain()
        pending, self.reports.events = self.reports.events, []
        for name, event in pending:
            try:
                await self.deliver(name, event)
            except ReportNotMatched:
                self.early_misses += 1
            self.later.append((name, event))
        return result

    async def close(self) -> None:
        pass


async def test_recipients_end_in_exactly_one_final_status(client, issuer, services, stores):
    await run_order(client, issuer, services, stores, recipients=100, name="notification-faults-short")


@pytest.mark.soak
@pytest.mark.timeout(1200)
async def test_a_thousand_recipients_end_in_exactly_one_final_status(client, issuer, services, stores):
    await run_order(client, issuer, services, stores, recipients=1_000, name="notification-faults")


async def run_order(client, issuer, services, stores, *, recipients: int, name: str) -> None:
    RECIPIENTS = recipients
    from functions import delivery_reports

    clock = FixedClock(NOON)
    reports = Reports()
    sink = LocalSink(reports.post, delay=0, keep=10_000)
    early = EarlyReports(sink, reports)
    bus = RecordingBus(stores.bus)
    config = NotificationConfig(retry_delays=(timedelta(seconds=1), timedelta(seconds=1)))
    services.notifications = build_notifications(
        services.settings,
        stores.tables,
        bus,
        services.publisher,
        settings=NotificationSettings(config=config),
        clock=clock,
        email=early,
        sms=sink.sms,
        sink=sink,
        publishing=services.access.authorizer,
    )
    with contextlib.suppress(ResourceNotFoundError):
        await stores.tables.get_table_client(PAUSE_TABLE).delete_entity("pause", "email")
    by_name = {
        b._function.get_function_name(): b._function.get_user_function()
        for b in (delivery_reports.email_delivery_report, delivery_reports.sms_delivery_report)
    }

    async def deliver(name: str, event: dict[str, Any]) -> None:
        await by_name[name](grid_event(event))

    early.deliver = deliver

    try:  # a valid organisation number where token subjects are checked
        from tests.support.identities import random_org

        sender = random_org()
    except ImportError:
        sender = "org:991825827"
    body = order_body(recipients=[{"emailAddress": address(i)} for i in range(RECIPIENTS)])
    response = await client.post(
        "/api/v1/notifications/orders", json=body, headers=issuer.headers("notifications.order", sub=sender)
    )
    assert response.status_code == 202, response.text
    order_id = response.json()["orderId"]

    from tests.notifications.conftest import Harness

    harness = Harness(services, stores, clock, sink, reports, bus)  # drives the queues as the host would
    report_deliveries = duplicate_reports = 0
    rounds = 0
    for _ in range(400):
        rounds += 1
        clock.advance(timedelta(seconds=2))  # past the 1 s delays and the 429's Retry-After
        await harness.run(order_id)
        # Event Grid redelivers the early reports, and delivers every report a second time.
        pending, early.later = early.later, []
        for function_name, report in pending + pending:
            with contextlib.suppress(ReportNotMatched):
                await deliver(function_name, report)
            report_deliveries += 1
        duplicate_reports += len(pending)
        document = (
            await client.get(
                f"/api/v1/notifications/orders/{order_id}/status",
                headers=issuer.headers("notifications.order", sub=sender),
            )
        ).json()
        states = Counter(n["sendStatus"]["status"] for n in document["notifications"])
        if not (states.keys() & {"New", "Sending"}) and not pending:
            break
    # The silent ones never get a report: Failed_TTL after 48 h.
    clock.advance(timedelta(hours=49))
    for _ in range(20):
        if not await services.notifications.expiry.expire():
            break

    document = (
        await client.get(
            f"/api/v1/notifications/orders/{order_id}/status",
            headers=issuer.headers("notifications.order", sub=sender),
        )
    ).json()
    notifications = document["notifications"]
    assert len(notifications) == RECIPIENTS
    final = Counter(n["sendStatus"]["status"] for n in notifications)
    not_final = [n for n in notifications if not is_final(Channel.EMAIL, Status(n["sendStatus"]["status"]))]
    assert not not_final, not_final[:3]
    by_address = {n["recipient"]["address"]: n["sendStatus"]["status"] for n in notifications}
    for i in range(RECIPIENTS):
        kind = i % 10
        # A transient failure is retried and a 429 pause counts against nothing: both end Delivered.
        want = {2: {"Failed_Bounced"}, 3: {"Failed_TTL"}, 4: {"Failed"}}.get(kind, {"Delivered"})
        assert by_address[address(i)] in want, (address(i), by_address[address(i)])
    # Flaky and throttled recipients whose retry budget ran out (none since 429s stopped counting).
    gave_up = Counter(
        address(i).split("@")[0] for i in range(RECIPIENTS) if i % 10 in (0, 1) and by_address[address(i)] == "Failed"
    )

    # One final-status event per notification in the hub (ids are <notification>:<status>).
    events: list[dict[str, Any]] = []
    url = f"/api/v1/events?resource=urn:herald:notifications:{sender}&subject={order_id}&size=1000"
    for _ in range(100):
        page = await client.get(url, headers=issuer.headers("events.read", sub=sender))
        assert page.status_code == 200, page.text
        if not page.json():
            break
        events.extend(page.json())
        link = page.headers["link"]
        url = link[link.index("/api/v1/") : link.index(">")]
    finals = Counter(
        e["data"]["notificationId"] for e in events if is_final(Channel.EMAIL, Status(e["data"]["status"]))
    )
    assert len(finals) == RECIPIENTS and set(finals.values()) == {1}
    captured = Counter(m["notification_id"] for m in sink.captured())
    record_figures(
        name,
        {
            "recipients": RECIPIENTS,
            "rounds": rounds,
            "flaky_or_throttled_that_ended_failed": dict(gave_up),
            "final_statuses": dict(final),
            "transient_failures_injected": RECIPIENTS // 10,
            "throttled_429_injected": RECIPIENTS // 10,
            "early_reports_missed_then_redelivered": early.early_misses,
            "reports_delivered_twice": duplicate_reports,
            "report_deliveries": report_deliveries,
            "emails_sent": sum(captured.values()),
            "emails_sent_twice": sum(1 for n in captured.values() if n > 1),
            "notifications_without_final_status": len(not_final),
            "notifications_with_more_than_one_final_event": sum(1 for n in finals.values() if n > 1),
        },
    )
