"""A process that dies between storing a notification's new status and publishing its status event:
the outbox sweep publishes the event, and the hub holds every status event exactly once.

The kill is injected at the event log port (the real Table Storage log behind it): the first append
carrying the chosen status's event for the order raises ``ProcessKilled``, a BaseException that no
handler in Herald catches, so nothing after that point runs, as after a SIGKILL. The message or report
that was being handled is then delivered again, as Service Bus and Event Grid do after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from devhost.azurite import AzuritePorts
from shared.events.log import AppendResult, EventLog
from shared.events.model import ValidatedEvent
from shared.events.publishing import EventPublisher
from shared.notifications.messages import EMAIL_QUEUE, ORDERS_QUEUE, SendBatch, StartOrder
from shared.notifications.model import Channel
from shared.notifications.reports import ReportNotMatched
from shared.notifications.sending import SEND_LEASE
from shared.notifications.status_events import HubStatusEvents
from tests.notifications import conftest as notification_fixtures
from tests.notifications.conftest import grid_event, order_body
from tests.reliability.processes import DevhostProcess
from tests.support.azurite import free_port, start_azurite

# The notification tests' harness: Herald on Azurite with a hand-moved clock and the local sink.
harness, limits = notification_fixtures.harness, notification_fixtures.limits


class ProcessKilled(BaseException):
    """The process died here."""


class KillAtPublish:
    """The event log, with the process killed at the first append of ``status``'s events for ``order_id``."""

    def __init__(self, inner: EventLog, status: str) -> None:
        self.inner, self.status = inner, status
        self.order_id: str | None = None
        self.killed = 0

    async def append(self, resource: str, events: Sequence[ValidatedEvent]) -> list[AppendResult]:
        if not self.killed and any(self._chosen(e) for e in events):
            self.killed += 1
            raise ProcessKilled(f"killed before publishing the {self.status} events")
        return await self.inner.append(resource, events)

    def _chosen(self, event: ValidatedEvent) -> bool:
        return event.subject == self.order_id and event.id.endswith(f":{self.status}")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


# The statuses each recipient goes through after New.
JOURNEYS = {
    "kari@example.com": ["Sending", "Succeeded", "Delivered"],
    "silent@example.com": ["Sending", "Succeeded", "Failed_TTL"],  # no report: Failed_TTL after 48 h
}


@pytest.mark.parametrize("killed_at", ["Sending", "Succeeded", "Delivered", "Failed_TTL"])
async def test_a_status_event_owed_at_a_crash_is_published_exactly_once(
    client, issuer, services, stores, harness, killed_at
):
    from functions import delivery_reports, timers
    from tests.support.identities import random_org

    clock, sink, reports = harness.clock, harness.sink, harness.reports
    feature = services.notifications
    # The real status event adapter, publishing through the real event log with the kill in front of it.
    log = KillAtPublish(stores.event_log, killed_at)
    default_resource = feature.sending.config.default_resource
    feature.status_outbox.events = HubStatusEvents(EventPublisher(log), clock, default_resource)  # type: ignore[arg-type]
    report_functions = {
        b._function.get_function_name(): b._function.get_user_function()
        for b in (delivery_reports.email_delivery_report, delivery_reports.sms_delivery_report)
    }

    sender = random_org()
    headers = issuer.headers("notifications.order", sub=sender)
    body = order_body(recipients=[{"emailAddress": address} for address in JOURNEYS])
    response = await client.post("/api/v1/notifications/orders", json=body, headers=headers)
    assert response.status_code == 202, response.text
    order_id = log.order_id = response.json()["orderId"]

    # Drive the order as the host would; whatever was being handled when the process died comes again.
    redeliver: list[tuple[str, bytes]] = []
    unsettled_reports: list[tuple[str, dict[str, Any]]] = []
    for _ in range(10):
        clock.advance(SEND_LEASE + timedelta(seconds=1))  # a dead run's send claim has lapsed
        work = redeliver + [(q, b) for q in (ORDERS_QUEUE, EMAIL_QUEUE) for b in await harness.take(q, order_id)]
        redeliver = []
        for queue, message in work:
            try:
                if queue == ORDERS_QUEUE:
                    await feature.starting.start(StartOrder.decode(message))
                else:
                    await feature.sending.send(Channel.EMAIL, SendBatch.decode(message))
            except ProcessKilled:
                redeliver.append((queue, message))
        await sink.drain()
        pending, reports.events = unsettled_reports + reports.events, []
        unsettled_reports = []
        for name, report in pending:
            try:
                await report_functions[name](grid_event(report))
            except (ProcessKilled, ReportNotMatched):
                unsettled_reports.append((name, report))
        if not work and not pending:
            break
    clock.advance(timedelta(hours=49))
    for _ in range(3):  # the expiry timer, run again after a crash
        with contextlib.suppress(ProcessKilled):
            await feature.expiry.expire()
    assert log.killed == 1

    status = (await client.get(f"/api/v1/notifications/orders/{order_id}/status", headers=headers)).json()
    assert {n["recipient"]["address"]: n["sendStatus"]["status"] for n in status["notifications"]} == {
        address: journey[-1] for address, journey in JOURNEYS.items()
    }
    ids = {n["recipient"]["address"]: n["id"] for n in status["notifications"]}
    want = Counter(f"{ids[address]}:{s}" for address, journey in JOURNEYS.items() for s in journey)

    async def hub() -> Counter[str]:
        url = f"/api/v1/events?resource=urn:herald:notifications:{sender}&subject={order_id}&size=1000"
        page = await client.get(url, headers=issuer.headers("events.read", sub=sender))
        assert page.status_code == 200, page.text
        return Counter(event["id"] for event in page.json())

    lost = {event_id for event_id in want if event_id.endswith(f":{killed_at}")}
    assert not lost & set(await hub())  # the crash kept them from the hub

    # The outbox sweep (every minute), past the grace period.
    clock.advance(timedelta(seconds=services.settings.outbox_grace_seconds) + timedelta(minutes=5))
    sweep = timers.notification_outbox_sweep._function.get_user_function()
    await sweep(None)
    assert await hub() == want  # every status event of both notifications, each exactly once
    await sweep(None)
    assert await hub() == want


class KillingTableProxy:
    """Azurite's table endpoint behind a TCP proxy that SIGKILLs devhost once it has stored a notification
    as Delivered, at the next request to the event log's tables: the publish never reaches storage."""

    STORED = re.compile(rb'"st":\s*"Delivered"')
    EVENT_LOG = re.compile(rb"/(events|eventresources)\(")

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.victim: int | None = None
        self.armed = False
        self.killed = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _serve(self) -> None:
        await asyncio.start_server(self._connection, "127.0.0.1", self.port)

    async def _connection(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        server_in, server_out = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def upstream() -> None:
            tail = b""
            while chunk := await client_in.read(65536):
                seen, tail = tail + chunk, chunk[-64:]
                if self.armed and self.victim and self.EVENT_LOG.search(seen):
                    os.kill(self.victim, signal.SIGKILL)
                    self.armed, self.victim = False, None
                    self.killed.set()
                    break
                if self.victim and self.STORED.search(seen):
                    self.armed = True
                server_out.write(chunk)
                await server_out.drain()
            server_out.close()

        async def downstream() -> None:
            while chunk := await server_in.read(65536):
                client_out.write(chunk)
                await client_out.drain()
            client_out.close()

        with contextlib.suppress(OSError):
            await asyncio.gather(upstream(), downstream())


@pytest.mark.azurite  # starts its own Azurite and devhost
@pytest.mark.timeout(300)
def test_devhost_killed_between_storing_delivered_and_publishing_it(tmp_path):
    """A real process, a real SIGKILL: devhost dies right after the delivery report's status change is
    stored, before its event reaches the log; after a restart the outbox sweep publishes it."""
    azurite = start_azurite()
    proxy = KillingTableProxy(azurite.table_port)
    proxy.start()
    port = free_port()
    devhost = DevhostProcess(
        azurite=SimpleNamespace(ports=AzuritePorts(azurite.blob_port, azurite.queue_port, proxy.port)),  # type: ignore[arg-type]
        state=tmp_path,
        port=port,
        extra_env={
            "HERALD_LOCAL_EVENTGRID_URL": f"http://127.0.0.1:{port}/runtime/webhooks/eventgrid",
            "HERALD_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "HERALD_LOCAL_SINK_REPORT_DELAY_SECONDS": "0.5",
            # The sweep after the restart, without waiting a minute for its schedule and its grace.
            "HERALD_SWEEP_SCHEDULE": "*/5 * * * * *",
            "HERALD_OUTBOX_GRACE_SECONDS": "3",
        },
    )
    try:
        devhost.start()
        sender = "org:991825827"
        order = {"Authorization": f"Bearer {devhost.token('notifications.order', sender)}"}
        read = {"Authorization": f"Bearer {devhost.token('events.read', sender)}"}
        with httpx.Client(base_url=devhost.url, timeout=30) as http:
            assert devhost.process is not None
            proxy.victim = devhost.process.pid
            body = order_body(recipients=[{"emailAddress": "kari@example.com"}])
            response = http.post("/api/v1/notifications/orders", json=body, headers=order)
            assert response.status_code == 202, response.text
            order_id = response.json()["orderId"]
            assert proxy.killed.wait(timeout=60), "the delivery report never came"
            devhost.process.wait(timeout=10)
            devhost.start()

            status = http.get(f"/api/v1/notifications/orders/{order_id}/status", headers=order).json()
            (notification,) = status["notifications"]
            assert notification["sendStatus"]["status"] == "Delivered"  # stored before the kill
            url = f"/api/v1/events?resource=urn:herald:notifications:{sender}&subject={order_id}&size=100"
            delivered = f"{notification['id']}:Delivered"
            deadline = time.monotonic() + 150
            while True:
                events = Counter(event["id"] for event in http.get(url, headers=read).json())
                if delivered in events or time.monotonic() > deadline:
                    break
                time.sleep(1)
            assert events == Counter(f"{notification['id']}:{s}" for s in ("Sending", "Succeeded", "Delivered"))
    finally:
        devhost.stop()
        proxy.stop()
        azurite.stop()
