"""``python -m devhost start --port`` moves everything that names devhost's address with it: the
subscription validation event's ``source`` (HERALD_PUBLIC_BASE_URL) and the local sink's delivery
reports (HERALD_LOCAL_EVENTGRID_URL) name the port devhost serves on, not 7071."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest

from tests.support.devhost_process import devhost_token

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def devhost(devhost):
    # Nothing in the environment names the port; devhost_process starts on a free one, never 7071.
    assert devhost.port != 7071
    return devhost


def token(devhost, sub: str, scopes: str) -> str:
    return devhost_token(devhost.env, sub, scopes)


async def test_the_validation_event_names_the_port_devhost_serves_on(devhost, receiver):
    consumer = "org:991825827"
    resource = f"urn:test:port:{uuid.uuid4().hex[:10]}"
    async with httpx.AsyncClient(base_url=devhost.url, timeout=10) as client:
        admin = {"Authorization": f"Bearer {token(devhost, 'system:port-admin', 'admin')}"}
        policy = {"publishers": [consumer], "owners": [consumer]}
        granted = await client.put(f"/api/v1/admin/policies/{resource}", json=policy, headers=admin)
        assert granted.status_code in (200, 201, 204), granted.text
        headers = {"Authorization": f"Bearer {token(devhost, consumer, 'events.subscribe')}"}
        subscription = {"endPoint": receiver.url("hook"), "resourceFilter": resource}
        created = await client.post("/api/v1/subscriptions", json=subscription, headers=headers)
        assert created.status_code == 201, created.text
        subscription_id = created.json()["id"]
        deadline = time.monotonic() + 30
        while not receiver.posts("hook"):
            assert time.monotonic() < deadline, "no validation event arrived"
            await asyncio.sleep(0.1)
    validation = json.loads(receiver.posts("hook")[0].body)
    assert validation["type"] == "platform.events.validatesubscription"
    assert validation["source"] == f"http://127.0.0.1:{devhost.port}/api/v1/subscriptions/{subscription_id}"


def test_the_local_sink_reports_to_the_port_devhost_serves_on(devhost):
    """The sink's report lands only if it reaches this devhost: on 7071 nobody (or another) answers."""
    orderer = "org:991825827"
    headers = {"Authorization": f"Bearer {token(devhost, orderer, 'notifications.order')}"}
    order = {
        "idempotencyId": f"port-{uuid.uuid4().hex[:10]}",
        "sendersReference": "port",
        "notificationChannel": "Email",
        "emailTemplate": {"subject": "Your case", "body": "Hello"},
        "recipients": [{"emailAddress": "port.report@example.com"}],
    }
    accepted = httpx.post(f"{devhost.url}/api/v1/notifications/orders", json=order, headers=headers, timeout=10)
    assert accepted.status_code == 202, accepted.text
    status_url = f"{devhost.url}/api/v1/notifications/orders/{accepted.json()['orderId']}/status"
    deadline = time.monotonic() + 30
    while True:
        document = httpx.get(status_url, headers=headers, timeout=10).json()
        statuses = [n["sendStatus"]["status"] for n in document["notifications"]]
        if "Delivered" in statuses:
            break
        assert time.monotonic() < deadline, statuses
        time.sleep(0.2)
