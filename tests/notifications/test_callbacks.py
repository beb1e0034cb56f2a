"""The SMS gateway's report callback (basic auth), the dev outbox, the function index."""

from __future__ import annotations

import httpx

from shared.notifications.messages import EMAIL_QUEUE, ORDERS_QUEUE, SendBatch, StartOrder
from shared.notifications.model import Channel
from tests.notifications.conftest import REPORT_PASSWORD, REPORT_USER, post_order, post_sms_order, status_of, statuses
from tests.support.identities import random_org

REPORTS = "/api/v1/notifications/sms/reports"


async def test_gateway_reports_need_the_basic_credentials(client, harness):
    assert (await client.post(REPORTS, json={"reference": "r", "state": "DELIVRD"})).status_code == 401
    wrong = await client.post(
        REPORTS, json={"reference": "r", "state": "DELIVRD"}, auth=httpx.BasicAuth(REPORT_USER, "nope")
    )
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Basic")


async def test_gateway_reports_move_sms_to_final_status(client, issuer, harness, sender):
    order_id = (await post_sms_order(client, issuer, sender, ["+4799999901", "+4799999902"])).json()["orderId"]
    await harness.run(order_id)
    refs = {m["to"]: m["reference"] for m in harness.sink.captured() if m["channel"] == "sms"}
    auth = httpx.BasicAuth(REPORT_USER, REPORT_PASSWORD)
    xml = f"<MSGLST><MSG><REF>{refs['+4799999902']}</REF><STATE>BARRED</STATE></MSG></MSGLST>"
    response = await client.post(REPORTS, content=xml, headers={"content-type": "application/xml"}, auth=auth)
    assert response.status_code == 200 and response.json()["applied"] == 1
    response = await client.post(REPORTS, json={"reference": refs["+4799999901"], "state": "DELIVRD"}, auth=auth)
    assert response.json()["applied"] == 1
    assert statuses(await status_of(client, issuer, sender, order_id)) == {
        "+4799999901": "Delivered",
        "+4799999902": "Failed_BarredReceiver",
    }
    unknown = await client.post(REPORTS, json={"reference": "not-yet", "state": "DELIVRD"}, auth=auth)
    assert unknown.status_code == 503 and unknown.headers["retry-after"] == "60"


async def test_dev_outbox_shows_an_orderer_its_own_messages_and_an_administrator_all(client, issuer, harness, sender):
    other = random_org()
    mine = (await post_order(client, issuer, sender, recipients=[{"emailAddress": "mine@example.com"}])).json()
    theirs = (await post_order(client, issuer, other, recipients=[{"emailAddress": "theirs@example.com"}])).json()
    for order in (mine, theirs):
        # Straight from what the order sent, not through the shared queues other tests leave messages in.
        for queue, message in list(harness.bus.sent):
            if queue == ORDERS_QUEUE and message.correlation_id == order["orderId"]:
                await harness.feature.starting.start(StartOrder.decode(message.body))
        for queue, message in list(harness.bus.sent):
            if queue == EMAIL_QUEUE and message.correlation_id == order["orderId"]:
                await harness.feature.sending.send(Channel.EMAIL, SendBatch.decode(message.body))

    async def outbox(headers: dict[str, str]) -> set[str]:
        response = await client.get("/api/v1/dev/outbox", headers=headers)
        assert response.status_code == 200, response.text
        return {m["to"] for m in response.json()["messages"]}

    assert await outbox(issuer.headers("notifications.order", sub=sender)) == {"mine@example.com"}
    assert await outbox(issuer.headers("notifications.order", sub=other)) == {"theirs@example.com"}
    assert {"mine@example.com", "theirs@example.com"} <= await outbox(issuer.headers("admin"))
    assert await outbox(issuer.headers("notifications.order", sub=random_org())) == set()
    assert (await client.get("/api/v1/dev/outbox", headers=issuer.headers("events.read"))).status_code == 403


async def test_dev_outbox_is_404_in_azure_mode(client, issuer, harness):
    from dataclasses import replace

    from shared.config import Mode

    harness.services.settings = replace(harness.services.settings, mode=Mode.AZURE)
    assert (await client.get("/api/v1/dev/outbox", headers=issuer.headers("admin"))).status_code == 404


def test_functions_are_indexed_with_their_triggers():
    from functions import delivery_reports, notifications

    builders = [getattr(module, name) for module in (delivery_reports, notifications) for name in dir(module)]
    functions = [b._function for b in builders if type(b).__name__ == "FunctionBuilder"]
    bindings = {f.get_function_name(): [b.type for b in f.get_bindings()] for f in functions}
    assert bindings["email_delivery_report"] == ["eventGridTrigger"]
    assert bindings["sms_delivery_report"] == ["eventGridTrigger"]
    for name in ("notifications_orders", "notifications_email", "notifications_sms"):
        assert bindings[name] == ["serviceBusTrigger"]
    assert bindings["notifications_due"] == ["timerTrigger"]


def test_notification_settings_are_documented():
    import json

    from shared.notifications.config import SETTINGS_READ
    from tests.conftest import REPO

    documented = json.loads((REPO / "local.settings.sample.json").read_text())["Documentation"]
    assert set(SETTINGS_READ) - set(documented) == set()
