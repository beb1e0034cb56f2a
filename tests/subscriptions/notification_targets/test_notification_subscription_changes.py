"""PATCH of a notification subscription: its notification changes for the next event, checked as a create
checks it (scope, senders, templates); a webhook subscription has no notification to change."""

from __future__ import annotations

from tests.subscriptions.notification_targets.conftest import (
    KARI,
    SCOPES,
    fan_out,
    notification,
    notify,
    publish,
    status_event,
    subscribe,
)


async def test_a_changed_notification_orders_the_next_event_with_it(
    client, issuer, harness, consumer, resource, residents, herald
):
    payload = {"resourceFilter": resource, "notification": notification()}
    created = (await subscribe(client, issuer, consumer, payload)).json()
    url = f"/api/v1/subscriptions/{created['id']}"
    changed = notification(emailTemplate={"subject": "Now: $data.statusText$", "body": "Status $data.statusText$"})

    without_scope = await client.patch(
        url, json={"notification": changed}, headers=issuer.headers("events.subscribe", sub=consumer)
    )
    assert without_scope.status_code == 403 and "notifications.order" in without_scope.json()["detail"]
    impersonating = notification(emailTemplate={"subject": "s", "body": "b", "fromAddress": "noreply@skatteetaten.no"})
    refused = await client.patch(
        url, json={"notification": impersonating}, headers=issuer.headers(*SCOPES, sub=consumer)
    )
    assert refused.status_code == 403 and refused.json()["type"].endswith("sender-not-granted")
    too_long = notification(notificationChannel="Sms", smsTemplate={"body": "€" * 1300})
    invalid = await client.patch(url, json={"notification": too_long}, headers=issuer.headers(*SCOPES, sub=consumer))
    assert invalid.status_code == 400 and "notification.smsTemplate.body" in invalid.json()["detail"]
    assert (await client.get(url, headers=issuer.headers(*SCOPES, sub=consumer))).json() == created

    response = await client.patch(url, json={"notification": changed}, headers=issuer.headers(*SCOPES, sub=consumer))
    assert response.status_code == 200, response.text
    assert response.json()["notification"]["emailTemplate"]["subject"] == "Now: $data.statusText$"
    assert response.json()["status"] == "active"

    await publish(client, issuer, [status_event(resource, f"person:{KARI}", "after-change")], "org:991825827")
    await fan_out(herald)
    [outcome] = await notify(herald, created["id"])
    order = await harness.feature.orders.get(consumer, outcome.order_id)
    assert order.email_template.subject == "Now: $data.statusText$"


async def test_targets_do_not_change_kind(client, issuer, consumer, resource, receiver):
    notifying = (
        await subscribe(client, issuer, consumer, {"resourceFilter": resource, "notification": notification()})
    ).json()
    to_webhook = await client.patch(
        f"/api/v1/subscriptions/{notifying['id']}",
        json={"endPoint": receiver.url("x")},
        headers=issuer.headers(*SCOPES, sub=consumer),
    )
    assert to_webhook.status_code == 400 and "no endPoint" in to_webhook.json()["detail"]

    pushing = (
        await subscribe(client, issuer, consumer, {"resourceFilter": resource, "endPoint": receiver.url("y")})
    ).json()
    to_notification = await client.patch(
        f"/api/v1/subscriptions/{pushing['id']}",
        json={"notification": notification()},
        headers=issuer.headers(*SCOPES, sub=consumer),
    )
    assert to_notification.status_code == 400 and "no notification" in to_notification.json()["detail"]


async def test_a_notification_subscription_is_not_ordered_on_create_or_patch(client, issuer, consumer, resource):
    """``ordering: subject`` orders pushes; a notification subscription's orders are not pushed, so the
    setting would be stored and do nothing: it is refused."""
    refused = await subscribe(
        client, issuer, consumer, {"resourceFilter": resource, "notification": notification(), "ordering": "subject"}
    )
    assert refused.status_code == 400, refused.text
    assert refused.headers["content-type"] == "application/problem+json" and "ordering" in refused.json()["detail"]

    created = await subscribe(client, issuer, consumer, {"resourceFilter": resource, "notification": notification()})
    assert created.status_code == 201, created.text
    url = f"/api/v1/subscriptions/{created.json()['id']}"
    patched = await client.patch(url, json={"ordering": "subject"}, headers=issuer.headers(*SCOPES, sub=consumer))
    assert patched.status_code == 400, patched.text
    assert patched.headers["content-type"] == "application/problem+json" and "ordering" in patched.json()["detail"]
    assert (await client.get(url, headers=issuer.headers(*SCOPES, sub=consumer))).json()["ordering"] == "none"
    unchanged = await client.patch(url, json={"ordering": "none"}, headers=issuer.headers(*SCOPES, sub=consumer))
    assert unchanged.status_code == 200, unchanged.text
