"""The orders API: validation, idempotency, visibility, cancel, recipients, scheduling and conditions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pytest_httpserver import HTTPServer

from shared.notifications.messages import SendBatch, StartOrder
from tests.notifications.conftest import let_publish, order_body, post_order, post_sms_order, status_of, statuses
from tests.support.identities import random_org

H = "notifications.order"


@pytest.mark.parametrize(
    ("overrides", "location"),
    [
        ({"recipients": [{"emailAddress": "not-an-address"}]}, "recipients.0.emailAddress"),
        (
            {"recipients": [{"mobileNumber": "99999999"}], "notificationChannel": "Sms", "smsTemplate": {"body": "x"}},
            "recipients.0.mobileNumber",
        ),
        (
            {"recipients": [{"mobileNumber": "+4712"}], "notificationChannel": "Sms", "smsTemplate": {"body": "x"}},
            "recipients.0.mobileNumber",
        ),
        ({"emailTemplate": None}, "emailTemplate"),
        ({"notificationChannel": "EmailAndSms"}, "smsTemplate"),
        ({"requestedSendTime": "2020-01-01T10:00:00Z"}, "requestedSendTime"),
        ({"requestedSendTime": "2030-01-01T10:00:00"}, "requestedSendTime"),
        ({"surprise": 1}, "body.surprise"),
        ({"recipients": []}, "body.recipients"),
        ({"recipients": [{"emailAddress": "a@example.com", "mobileNumber": "+4799999999"}]}, "recipients.0"),
        ({"recipients": [{"nationalIdentityNumber": "123"}]}, "recipients.0.nationalIdentityNumber"),
        (
            {
                "notificationChannel": "Sms",
                "smsTemplate": {"body": "x" * 2449},
                "recipients": [{"mobileNumber": "+4799999999"}],
            },
            "smsTemplate.body",
        ),
        (
            {
                "notificationChannel": "Sms",
                "smsTemplate": {"body": "ł" * 1073},
                "recipients": [{"mobileNumber": "+4799999999"}],
            },
            "smsTemplate.body",
        ),
    ],
)
async def test_bad_input_is_a_problem_and_nothing_is_stored(client, issuer, harness, sender, overrides, location):
    body = order_body(**overrides)
    body = {key: value for key, value in body.items() if value is not None}
    headers = issuer.headers(H, sub=sender)
    response = await client.post("/api/v1/notifications/orders", json=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert any(e["location"].endswith(location) or e["location"] == location for e in response.json()["errors"])
    # Nothing stored: the same idempotency id still makes a NEW order once the body is fixed.
    good = await client.post(
        "/api/v1/notifications/orders", json=order_body(idempotencyId=body["idempotencyId"]), headers=headers
    )
    assert good.status_code == 202


async def test_same_idempotency_id_returns_the_same_order(client, issuer, harness, sender):
    body = order_body()
    headers = issuer.headers(H, sub=sender)
    first = await client.post("/api/v1/notifications/orders", json=body, headers=headers)
    again = await client.post("/api/v1/notifications/orders", json=body, headers=headers)
    assert first.status_code == 202 and again.status_code == 200
    assert first.json() == again.json()
    # Another sender's same id is another order.
    other = await client.post("/api/v1/notifications/orders", json=body, headers=issuer.headers(H, sub=random_org()))
    assert other.status_code == 202 and other.json()["orderId"] != first.json()["orderId"]


async def test_orders_are_visible_only_to_their_creator(client, issuer, harness, sender):
    order_id = (await post_order(client, issuer, sender)).json()["orderId"]
    mine = await client.get(f"/api/v1/notifications/orders/{order_id}", headers=issuer.headers(H, sub=sender))
    assert mine.status_code == 200 and mine.json()["processingStatus"]["status"] == "Registered"
    for path in ("", "/status"):
        theirs = await client.get(
            f"/api/v1/notifications/orders/{order_id}{path}", headers=issuer.headers(H, sub=random_org())
        )
        assert theirs.status_code == 404
        assert theirs.headers["content-type"] == "application/problem+json"


async def test_cancel_before_processing_only(client, issuer, harness, sender):
    later = (harness.clock.now() + timedelta(hours=2)).isoformat()
    order_id = (await post_order(client, issuer, sender, requestedSendTime=later)).json()["orderId"]
    headers = issuer.headers(H, sub=sender)
    response = await client.post(f"/api/v1/notifications/orders/{order_id}/cancel", headers=headers)
    assert response.status_code == 200 and response.json()["processingStatus"]["status"] == "Cancelled"
    await harness.run(order_id)  # the delayed start message finds a cancelled order
    assert harness.sink.captured() == [] or all(m["to"] != "kari@example.com" or False for m in [])
    assert (await status_of(client, issuer, sender, order_id))["notifications"] == []

    started = (await post_order(client, issuer, sender)).json()["orderId"]
    await harness.run(started)
    refused = await client.post(f"/api/v1/notifications/orders/{started}/cancel", headers=headers)
    assert refused.status_code == 409


async def test_scheduled_order_waits_for_its_send_time(client, issuer, harness, sender):
    at = harness.clock.now() + timedelta(minutes=30)
    order_id = (await post_order(client, issuer, sender, requestedSendTime=at.isoformat())).json()["orderId"]
    start = [m for q, m in harness.bus.sent if q == "notifications-orders" and m.correlation_id == order_id]
    assert start[0].deliver_at == at
    # Delivered early (a storage queue hides a message for at most 7 days): it waits again.
    await harness.feature.starting.start(StartOrder.decode(start[0].body))
    assert (await status_of(client, issuer, sender, order_id))["processingStatus"]["status"] == "Registered"
    # The due timer finds it once due (plus grace) and starts it.
    harness.clock.advance(timedelta(minutes=32))
    assert await harness.feature.starting.enqueue_due() >= 1
    await harness.run(order_id)
    assert statuses(await status_of(client, issuer, sender, order_id)) == {"kari@example.com": "Succeeded"}


async def test_daytime_sms_waits_for_0900_oslo(client, issuer, harness, sender):
    harness.clock.at = datetime(2026, 3, 4, 20, 0, tzinfo=UTC)  # 21:00 in Oslo
    order_id = (await post_sms_order(client, issuer, sender, ["+4799999901"])).json()["orderId"]
    await harness.run(order_id)
    batch = [m for q, m in harness.bus.sent if q == "notifications-sms" and m.correlation_id == order_id]
    assert batch[0].deliver_at == datetime(2026, 3, 5, 8, 0, tzinfo=UTC)  # 09:00 Oslo (CET)
    assert statuses(await status_of(client, issuer, sender, order_id)) == {"+4799999901": "New"}
    # A batch handled outside the window is re-queued, not sent.
    await harness.feature.sending.send(
        __import__("shared.notifications.model", fromlist=["Channel"]).Channel.SMS, SendBatch.decode(batch[0].body)
    )
    assert not [m for m in harness.sink.captured() if m["to"] == "+4799999901"]
    harness.clock.at = datetime(2026, 3, 5, 8, 30, tzinfo=UTC)
    await harness.feature.sending.send(
        __import__("shared.notifications.model", fromlist=["Channel"]).Channel.SMS, SendBatch.decode(batch[0].body)
    )
    assert statuses(await status_of(client, issuer, sender, order_id)) == {"+4799999901": "Accepted"}


async def test_reservation_organisations_and_roles(client, issuer, harness, sender):
    admin = issuer.headers("admin")
    persons = [
        {
            "nationalIdentityNumber": "01017012345",
            "name": "Kari",
            "emailAddress": "kari.p@example.com",
            "reserved": True,
        },
        {"nationalIdentityNumber": "02027012345", "name": "Ola", "emailAddress": "ola.p@example.com"},
    ]
    assert (await client.put("/api/v1/admin/contacts/persons", json={"persons": persons}, headers=admin)).json() == {
        "stored": 2
    }
    organization = {
        "organizationNumber": "991825827",
        "name": "Digdir & Co",
        "emailAddresses": ["post@digdir.example"],
        "roles": [
            {
                "name": "DAGL",
                "resources": ["urn:altinn:resource:skatt"],
                "holders": [{"nationalIdentityNumber": "03037012345", "emailAddress": "boss@digdir.example"}],
            },
            {
                "name": "OTHER",
                "resources": [],
                "holders": [{"nationalIdentityNumber": "04047012345", "emailAddress": "clerk@digdir.example"}],
            },
        ],
    }
    await client.put("/api/v1/admin/contacts/organizations", json={"organizations": [organization]}, headers=admin)
    await let_publish(harness.services, "urn:altinn:resource:skatt", sender)
    response = await post_order(
        client,
        issuer,
        sender,
        resourceId="urn:altinn:resource:skatt",
        emailTemplate={"subject": "s", "body": "<b>$recipientName$</b> $recipientNumber$", "contentType": "Html"},
        recipients=[
            {"nationalIdentityNumber": "01017012345"},
            {"nationalIdentityNumber": "02027012345"},
            {"nationalIdentityNumber": "09097012345"},
            {"organizationNumber": "991825827"},
        ],
    )
    lookup = response.json()["recipientLookup"]
    assert lookup == {"status": "PartialSuccess", "isReserved": ["01017012345"], "missingContact": ["09097012345"]}
    order_id = response.json()["orderId"]
    await harness.run(order_id)
    result = statuses(await status_of(client, issuer, sender, order_id))
    assert result == {
        "01017012345": "Failed_RecipientReserved",
        "09097012345": "Failed_RecipientNotIdentified",
        "ola.p@example.com": "Succeeded",
        "post@digdir.example": "Succeeded",
        "boss@digdir.example": "Succeeded",
    }
    body = next(m["body"] for m in harness.sink.captured() if m["to"] == "post@digdir.example")
    assert body == "<b>Digdir &amp; Co</b> 991825827"


async def test_condition_endpoint_false_and_failures(client, issuer, harness, sender, httpserver: HTTPServer):
    httpserver.expect_request("/no").respond_with_json({"sendNotification": False})
    httpserver.expect_request("/broken").respond_with_data("oops", status=500)
    no = (await post_order(client, issuer, sender, conditionEndpoint=httpserver.url_for("/no"))).json()["orderId"]
    await harness.run(no)
    assert (await status_of(client, issuer, sender, no))["processingStatus"]["status"] == "SendConditionNotMet"
    broken = (await post_order(client, issuer, sender, conditionEndpoint=httpserver.url_for("/broken"))).json()[
        "orderId"
    ]
    await harness.run(broken)  # first failure: retried once by a delayed message, then sent anyway
    retry = [m for q, m in harness.bus.sent if q == "notifications-orders" and m.correlation_id == broken]
    assert retry[-1].deliver_at is not None
    assert statuses(await status_of(client, issuer, sender, broken)) == {"kari@example.com": "Succeeded"}


async def test_sms_at_the_limit_is_accepted(client, issuer, harness, sender):
    for body in ("x" * 2448, "ł" * 1072, "€" * 1224):
        response = await post_sms_order(client, issuer, sender, ["+4799999999"], {"body": body})
        assert response.status_code == 202, response.text


async def test_an_order_read_without_its_recipients_keeps_every_other_field_and_cannot_be_written_back(
    client, issuer, harness, sender
):
    from dataclasses import replace

    from shared.notifications.ports import Conflict

    recipients = [{"emailAddress": f"person{i}@example.com"} for i in range(3_000)]  # past one 64 KiB property
    await let_publish(harness.services, "urn:altinn:resource:order-fields", sender)
    body = order_body(
        recipients=recipients,
        resourceId="urn:altinn:resource:order-fields",
        requestedSendTime="2030-01-01T10:00:00Z",
        sendingTimePolicy="Daytime",
    )
    response = await client.post("/api/v1/notifications/orders", json=body, headers=issuer.headers(H, sub=sender))
    assert response.status_code == 202, response.text
    order_id = response.json()["orderId"]
    store = harness.feature.starting.orders

    whole = await store.get(sender, order_id)
    summary = await store.get(sender, order_id, recipients=False)
    assert whole is not None and summary is not None
    assert len(whole.recipients) == 3_000 and summary.recipients == []
    assert replace(summary, recipients=whole.recipients, version=whole.version) == whole
    # Without its version the summary cannot replace the stored order (and with it the recipients).
    with pytest.raises(Conflict):
        await store.update(summary)
    assert len((await store.get(sender, order_id)).recipients) == 3_000
