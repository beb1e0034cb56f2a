"""Whole lifecycles through the API, the real Azurite queues and the Event Grid-triggered functions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.notifications.model import Channel
from shared.notifications.reports import ReportNotMatched
from tests.notifications.conftest import post_order, post_sms_order, status_of, statuses


async def test_email_order_runs_to_delivered_and_publishes_status_events(client, issuer, harness, sender):
    response = await post_order(
        client,
        issuer,
        sender,
        emailTemplate={"subject": "Hi", "body": "<p>$recipientName$</p>", "contentType": "Html"},
        recipients=[{"emailAddress": "kari@example.com"}, {"emailAddress": "ola@example.com"}],
    )
    assert response.status_code == 202, response.text
    order_id = response.json()["orderId"]
    assert response.json()["recipientLookup"]["status"] == "Success"

    await harness.run(order_id)
    sent = [m for m in harness.sink.captured() if m["channel"] == "email"]
    assert {m["to"] for m in sent} >= {"kari@example.com", "ola@example.com"}
    assert statuses(await status_of(client, issuer, sender, order_id)) == {
        "kari@example.com": "Succeeded",
        "ola@example.com": "Succeeded",
    }

    await harness.deliver_reports()
    document = await status_of(client, issuer, sender, order_id)
    assert set(statuses(document).values()) == {"Delivered"}
    assert document["processingStatus"]["status"] == "Completed"
    assert document["counts"]["email"]["delivered"] == 2

    events = await client.get(
        "/api/v1/events",
        params={"resource": f"urn:herald:notifications:{sender}"},
        headers=issuer.headers("events.read", sub=sender),
    )
    types = [event["type"] for event in events.json()]
    assert types.count("herald.notification.email.delivered") == 2
    assert "herald.notification.email.succeeded" in types
    assert all(event["subject"] == order_id for event in events.json())


async def test_email_failure_kinds(client, issuer, harness, sender):
    recipients = ["bounce@example.com", "suppressed@example.com", "invalid@example.com", "spam@example.com"]
    response = await post_order(client, issuer, sender, recipients=[{"emailAddress": r} for r in recipients])
    order_id = response.json()["orderId"]
    await harness.run(order_id)
    await harness.deliver_reports()
    assert statuses(await status_of(client, issuer, sender, order_id)) == {
        "bounce@example.com": "Failed_Bounced",
        "suppressed@example.com": "Failed_SupressedRecipient",
        "invalid@example.com": "Failed_InvalidEmailFormat",
        "spam@example.com": "Failed_FilteredSpam",
    }


async def test_sms_lifecycle_and_failure_kinds(client, issuer, harness, sender):
    numbers = ["+4799999901", "+4799999991", "+4799999992"]
    response = await post_sms_order(
        client, issuer, sender, numbers, {"body": "Code for $recipientName$", "senderNumber": "Herald"}
    )
    assert response.status_code == 202, response.text
    order_id = response.json()["orderId"]
    await harness.run(order_id)
    assert statuses(await status_of(client, issuer, sender, order_id))["+4799999901"] == "Accepted"
    await harness.deliver_reports()
    assert statuses(await status_of(client, issuer, sender, order_id)) == {
        "+4799999901": "Delivered",
        "+4799999991": "Failed",
        "+4799999992": "Failed_InvalidRecipient",
    }


async def test_transient_failure_is_retried_by_a_delayed_message(client, issuer, harness, sender):
    response = await post_order(client, issuer, sender, recipients=[{"emailAddress": "flaky@example.com"}])
    order_id = response.json()["orderId"]
    await harness.run(order_id)
    retry = [m for q, m in harness.bus.sent if q == "notifications-email" and m.deliver_at is not None]
    # The retry is a delayed message (the harness clock is fixed in the past, so Azurite shows it at once).
    assert [m.deliver_at for m in retry] == [harness.clock.now() + timedelta(seconds=1)]
    assert statuses(await status_of(client, issuer, sender, order_id)) == {"flaky@example.com": "Succeeded"}
    assert len([m for m in harness.sink.captured() if m["to"] == "flaky@example.com"]) == 1


async def test_429_pauses_all_email_sending(client, issuer, harness, sender):
    first = (await post_order(client, issuer, sender, recipients=[{"emailAddress": "throttle@example.com"}])).json()
    await harness.run(first["orderId"])
    paused = await harness.feature.sending.pause.paused_until(Channel.EMAIL)
    assert paused is not None and paused > harness.clock.now()
    # Another order's batch during the pause is not sent: it is re-queued until the pause ends.
    second = (await post_order(client, issuer, sender, recipients=[{"emailAddress": "other@example.com"}])).json()
    before = len(harness.sink.captured())
    await harness.run(second["orderId"])
    assert len(harness.sink.captured()) == before
    requeued = [m for q, m in harness.bus.sent if q == "notifications-email" and m.correlation_id == second["orderId"]]
    assert requeued[-1].deliver_at == paused
    assert statuses(await status_of(client, issuer, sender, second["orderId"])) == {"other@example.com": "New"}


async def test_same_report_twice_changes_nothing_and_status_never_moves_back(client, issuer, harness, sender):
    order_id = (await post_order(client, issuer, sender)).json()["orderId"]
    await harness.run(order_id)
    await harness.sink.drain()
    pending = list(harness.reports.events)
    await harness.deliver_reports()
    harness.reports.events = pending + pending
    await harness.deliver_reports()  # again, twice: nothing changes
    document = await status_of(client, issuer, sender, order_id)
    assert statuses(document) == {"kari@example.com": "Delivered"}


async def test_early_delivery_report_is_retried_then_parked(harness):
    report = {"messageId": "never-stored", "status": "Delivered", "recipient": "x@example.com"}
    for _ in range(harness.feature.reports.config.report_max_attempts - 1):
        with pytest.raises(ReportNotMatched):
            await harness.feature.reports.from_event_grid(Channel.EMAIL, "event", report, cloud_event=False)
    assert await harness.feature.reports.from_event_grid(Channel.EMAIL, "event", report, cloud_event=False) == "parked"
    parked = await harness.feature.reports.parked()
    assert any(p["reference"] == "never-stored" and p["reason"] == "RETRY_THRESHOLD_EXCEEDED" for p in parked)


async def test_notification_without_final_status_expires_to_failed_ttl(client, issuer, harness, sender):
    order_id = (await post_order(client, issuer, sender, recipients=[{"emailAddress": "silent@example.com"}])).json()[
        "orderId"
    ]
    await harness.run(order_id)
    assert statuses(await status_of(client, issuer, sender, order_id)) == {"silent@example.com": "Succeeded"}
    harness.clock.advance(timedelta(hours=47))
    await harness.feature.expiry.expire()
    assert statuses(await status_of(client, issuer, sender, order_id)) == {"silent@example.com": "Succeeded"}
    harness.clock.advance(timedelta(hours=2))
    assert await harness.feature.expiry.expire() >= 1
    assert statuses(await status_of(client, issuer, sender, order_id)) == {"silent@example.com": "Failed_TTL"}


async def test_a_send_cut_off_by_a_crash_is_taken_over_after_its_lease(client, issuer, harness, sender):
    """The process dies after claiming a notification and before settling it: the redelivered
    message waits out the claim's lease, then sends it (at least once, never stuck in Sending)."""
    import asyncio

    from shared.notifications.messages import EMAIL_QUEUE, ORDERS_QUEUE, SendBatch, StartOrder

    order_id = (await post_order(client, issuer, sender, recipients=[{"emailAddress": "crash@example.com"}])).json()[
        "orderId"
    ]
    for body in await harness.take(ORDERS_QUEUE, order_id):
        await harness.feature.starting.start(StartOrder.decode(body))
    [batch] = await harness.take(EMAIL_QUEUE, order_id)

    sending = harness.feature.sending
    real_email = sending.email

    class Killed:
        async def send(self, *args, **kwargs):
            raise asyncio.CancelledError  # the worker is gone mid-send

    sending.email = Killed()
    with pytest.raises(asyncio.CancelledError):
        await sending.send(Channel.EMAIL, SendBatch.decode(batch))
    sending.email = real_email
    assert statuses(await status_of(client, issuer, sender, order_id)) == {"crash@example.com": "Sending"}

    harness.clock.advance(timedelta(seconds=5))  # redelivered at once: the claim is still leased
    await sending.send(Channel.EMAIL, SendBatch.decode(batch))
    assert not [m for m in harness.sink.captured() if m["to"] == "crash@example.com"]
    [lease] = [m for q, m in harness.bus.sent if q == EMAIL_QUEUE and m.deliver_at is not None]
    assert lease.deliver_at - harness.clock.now() <= timedelta(minutes=2)

    harness.clock.advance(timedelta(minutes=2))
    await sending.send(Channel.EMAIL, SendBatch.decode(lease.body))
    assert len([m for m in harness.sink.captured() if m["to"] == "crash@example.com"]) == 1
    assert statuses(await status_of(client, issuer, sender, order_id)) == {"crash@example.com": "Succeeded"}


async def test_a_report_before_the_send_is_recorded_is_retried_then_applied(client, issuer, harness, sender):
    """A provider may report delivery before Herald has recorded the send (the batch is still
    settling): the report is answered 'retry', not dropped, and applies once the send is recorded."""
    store = harness.feature.sending.notifications
    index_reference = store.index_reference
    early: list[str] = []

    async def index_then_report(channel, reference, creator, order_id, notification_id):
        await index_reference(channel, reference, creator, order_id, notification_id)
        report = {"messageId": reference, "status": "Delivered", "recipient": "kari@example.com"}
        with pytest.raises(ReportNotMatched, match="still being sent"):
            await harness.feature.reports.from_event_grid(Channel.EMAIL, "event", report, cloud_event=False)
        early.append(reference)

    store.index_reference = index_then_report
    try:
        order_id = (await post_order(client, issuer, sender)).json()["orderId"]
        await harness.run(order_id)
    finally:
        store.index_reference = index_reference
    assert len(early) == 1
    assert statuses(await status_of(client, issuer, sender, order_id)) == {"kari@example.com": "Succeeded"}

    # The provider retries: now it applies, and the early attempt counted nothing toward parking.
    report = {"messageId": early[0], "status": "Delivered", "recipient": "kari@example.com"}
    assert await harness.feature.reports.from_event_grid(Channel.EMAIL, "event", report, cloud_event=False) == "applied"
    assert statuses(await status_of(client, issuer, sender, order_id)) == {"kari@example.com": "Delivered"}
    assert not [p for p in await harness.feature.reports.parked() if p["reference"] == early[0]]


async def test_a_change_from_held_versions_never_overwrites_another_writers_change(client, issuer, harness, sender):
    from dataclasses import replace

    from shared.notifications.messages import ORDERS_QUEUE, StartOrder

    recipients = [{"emailAddress": f"person{i}@example.com"} for i in range(3)]
    order_id = (await post_order(client, issuer, sender, recipients=recipients)).json()["orderId"]
    for body in await harness.take(ORDERS_QUEUE, order_id):
        await harness.feature.starting.start(StartOrder.decode(body))
    store = harness.feature.starting.notifications
    ids = [n.id for n in await store.of_order(order_id)]
    assert len(ids) == 3

    held = (await store.change(order_id, ids, lambda n: replace(n, description="first"))).notifications
    assert len(held) == 3 and all(n.version for n in held)
    # Another writer changes one of them after the holder read it.
    await store.change(order_id, ids[:1], lambda n: replace(n, failures=n.failures + 1))

    again = (
        await store.change(order_id, ids, lambda n: replace(n, description=f"{n.description}+second"), known=held)
    ).notifications
    assert len(again) == 3
    stored = {n.id: n for n in await store.of_order(order_id)}
    assert {n.description for n in stored.values()} == {"first+second"}
    assert stored[ids[0]].failures == 1  # the other writer's change survived
    assert {n.id: n.version for n in again} == {i: stored[i].version for i in ids}  # versions handed back are current
