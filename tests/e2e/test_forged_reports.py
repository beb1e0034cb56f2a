"""A delivery report forged against devhost's Event Grid webhook changes nothing without the
``eventgrid_extension`` system key; the local sink's real reports, sent with it, still land."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import httpx
import pytest

from shared.adapters.local_sink import email_report
from tests.support.devhost_process import devhost_cli, devhost_token

pytestmark = pytest.mark.e2e


def get(url: str, token: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def statuses(url: str, token: str, order_id: str) -> list[str]:
    document = get(f"{url}/api/v1/notifications/orders/{order_id}/status", token)
    return [n["sendStatus"]["status"] for n in document["notifications"]]


def test_a_forged_bounce_without_the_system_key_changes_nothing(devhost):
    url, env = devhost.url, devhost.env
    token = devhost_token(env, "org:991825827", "notifications.order")
    order = {
        "idempotencyId": f"forged-{devhost.port}",
        "sendersReference": "forged-report",
        "notificationChannel": "Email",
        "emailTemplate": {"subject": "Your case", "body": "Hello"},
        # The sink reports on the first address itself (with the key); it never reports on ``silent@``.
        "recipients": [{"emailAddress": "forged.report@example.com"}, {"emailAddress": "silent@example.com"}],
    }
    headers = {"Authorization": f"Bearer {token}"}
    accepted = httpx.post(f"{url}/api/v1/notifications/orders", json=order, headers=headers, timeout=10)
    assert accepted.status_code == 202, accepted.text
    order_id = accepted.json()["orderId"]
    deadline = time.monotonic() + 30
    while "Delivered" not in statuses(url, token, order_id):  # the sink's own report, sent with the key
        assert time.monotonic() < deadline, statuses(url, token, order_id)
        time.sleep(0.2)
    before = statuses(url, token, order_id)
    outbox = get(f"{url}/api/v1/dev/outbox", token)
    items = outbox if isinstance(outbox, list) else outbox.get("messages", outbox.get("items", []))
    (sent,) = [item for item in items if item["to"] == "silent@example.com"]

    bounce = [email_report(sent["reference"], sent["sender"], sent["to"], "Bounced")]
    webhook = f"{url}/runtime/webhooks/eventgrid?functionName=email_delivery_report"
    notification = {"aeg-event-type": "Notification"}
    for name, attempt in {
        "no key": {"headers": notification},
        "guessed header": {"headers": notification | {"x-functions-key": "guess"}},
        "guessed code": {"headers": notification, "params": {"functionName": "email_delivery_report", "code": "x"}},
    }.items():
        refused = httpx.post(webhook, json=bounce, timeout=10, **attempt)
        assert refused.status_code == 401, (name, refused.status_code, refused.text)
    time.sleep(0.5)
    assert statuses(url, token, order_id) == before
    assert "Failed_Bounced" not in before

    # The key `python -m devhost key` prints is the one devhost checks: with it, the same report lands.
    key = devhost_cli(env, "key", "eventgrid_extension", "--state-dir", str(devhost.state))
    taken = httpx.post(webhook, json=bounce, headers=notification | {"x-functions-key": key}, timeout=10)
    assert taken.status_code == 200, taken.text
    deadline = time.monotonic() + 15
    while "Failed_Bounced" not in statuses(url, token, order_id):
        assert time.monotonic() < deadline, statuses(url, token, order_id)
        time.sleep(0.2)
