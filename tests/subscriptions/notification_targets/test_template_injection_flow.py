"""An event whose data holds a recipient keyword and a line separator, through fan-out, the notify
stage and the send: the email that goes out carries the text as written, on one subject line."""

from __future__ import annotations

from shared.notifications.messages import QUEUES
from tests.subscriptions.notification_targets.conftest import (
    KARI,
    drain,
    fan_out,
    notification,
    notify,
    publish,
    status_event,
    subscribe,
)


async def test_event_data_cannot_pull_in_the_recipients_name_or_add_a_header(
    client, issuer, harness, services, consumer, resource, residents, herald
):
    template = {"subject": "$data.title$", "body": "$data.title$ / $recipientName$", "contentType": "Plain"}
    payload = {"resourceFilter": resource, "notification": notification(emailTemplate=template)}
    subscription = (await subscribe(client, issuer, consumer, payload)).json()
    title = "Dear $recipientName$\u2028Bcc: victim@example.com"
    await publish(client, issuer, [status_event(resource, f"person:{KARI}", "SIG-7-1", title=title)], "org:991825827")
    await fan_out(herald)
    [outcome] = await notify(herald, subscription["id"])
    assert outcome.outcome == "ordered"
    await drain(herald, QUEUES)
    [email] = [m for m in harness.sink.captured() if m["to"] == "kari.nordmann@example.com" and "victim" in m["body"]]
    assert email["subject"] == "Dear $recipientName$ Bcc: victim@example.com"
    assert email["body"] == f"{title} / Kari <Nordmann>"
