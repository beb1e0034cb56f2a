"""Backfill through devhost as a process: events published before the subscription existed reach a real
receiver, all of them, in log order and signed; meanwhile another subscription's live pushes keep their
pace."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid

import httpx
import pytest
from standardwebhooks import Webhook

from tests.support.devhost_process import devhost_token, open_resource

pytestmark = pytest.mark.e2e

CONSUMER = "org:991825827"
# Two backfill messages (256 deliveries each at most) and a second turn: enough for order across turns and
# for timing live pushes meanwhile, in a few seconds.
EVENTS = 400


async def active(http: httpx.AsyncClient, body: dict) -> dict:
    created = await http.post("/api/v1/subscriptions", json=body)
    assert created.status_code == 201, created.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if (await http.get(f"/api/v1/subscriptions/{created.json()['id']}")).json()["status"] == "active":
            return created.json()
        await asyncio.sleep(0.1)
    raise AssertionError("the subscription was never validated")


def pushed(receiver, path: str) -> list:
    return [p for p in receiver.posts(path) if json.loads(p.body)["type"] != "platform.events.validatesubscription"]


async def live_latency(http: httpx.AsyncClient, receiver, resource: str) -> float:
    """Seconds from a publish's answer to its push arriving at the live subscription's endpoint."""
    event_id = f"live-{uuid.uuid4().hex[:8]}"
    document = {"specversion": "1.0", "id": event_id, "source": "urn:e2e", "type": "t", "resource": resource}
    answer = await http.post("/api/v1/events", json=document, headers={"Content-Type": "application/cloudevents+json"})
    assert answer.status_code == 202, answer.text
    published = time.monotonic()
    deadline = published + 60
    seen = 0
    while time.monotonic() < deadline:
        posts = receiver.posts("live")
        for post in posts[seen:]:
            if json.loads(post.body)["id"] == event_id:
                return post.at - published
        seen = len(posts)
        await asyncio.sleep(0.005)
    raise AssertionError("the live push never arrived")


async def test_a_backfill_reaches_a_new_subscription_in_order_while_live_pushes_keep_their_pace(devhost, receiver):
    token = devhost_token(devhost.env, CONSUMER, "events.publish events.read events.subscribe")
    old, live = f"urn:e2e:backfill:{uuid.uuid4().hex[:8]}", f"urn:e2e:live:{uuid.uuid4().hex[:8]}"
    open_resource(devhost.port, devhost.env, old)
    open_resource(devhost.port, devhost.env, live)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=devhost.url, headers=headers, timeout=30) as http:
        batch = [
            {
                "specversion": "1.0",
                "id": f"old-{n}",
                "source": "urn:e2e",
                "type": "t",
                "resource": old,
                "data": {"n": n},
            }
            for n in range(EVENTS)
        ]
        answer = await http.post(
            "/api/v1/events", content=json.dumps(batch), headers={"Content-Type": "application/cloudevents-batch+json"}
        )
        assert answer.status_code == 202, answer.text
        await active(http, {"endPoint": receiver.url("live"), "resourceFilter": live})
        idle = [await live_latency(http, receiver, live) for _ in range(5)]

        # Subscribed after the events were published: only a backfill brings them.
        late = await active(http, {"endPoint": receiver.url("late"), "resourceFilter": old})
        started = await http.post(f"/api/v1/subscriptions/{late['id']}/backfill", json={"from": "2000-01-01T00:00:00Z"})
        assert started.status_code == 202, started.text
        busy = []
        # Timed while the first 60 % go: the rest (a second or two of pushes) is left to prove it still ran.
        while len(receiver.posts("late")) < EVENTS * 0.6 and len(busy) < 20:
            busy.append(await live_latency(http, receiver, live))
        assert len(receiver.posts("late")) < EVENTS, "the backfill ended before the live pushes were timed"

        progress_url = f"/api/v1/subscriptions/{late['id']}/backfills/{started.json()['id']}"
        deadline = time.monotonic() + 120
        while (view := (await http.get(progress_url)).json())["state"] == "running" and time.monotonic() < deadline:
            await asyncio.sleep(0.2)

    assert (view["state"], view["scanned"], view["matched"], view["pushed"]) == ("completed", EVENTS, EVENTS, EVENTS)
    posts = pushed(receiver, "late")
    assert [json.loads(p.body)["id"] for p in posts] == [f"old-{n}" for n in range(EVENTS)]
    webhook = Webhook(late["secret"])
    for post in posts:
        webhook.verify(post.body.decode(), post.headers)
    # A live push waits for its own pipeline, not for the backfill: generously, within a few times its idle
    # latency (devhost's queue polling dominates both).
    idle_median, busy_median = statistics.median(idle), statistics.median(busy)
    assert busy_median <= 3 * idle_median + 0.5, (idle, busy)
    assert max(busy) <= 5 * max(idle) + 1.0, (idle, busy)
