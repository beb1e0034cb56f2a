"""Backfill: a subscription gets the stored events of a range pushed, as their live pushes would have been
(same filters, same authorization, same webhook-id), in log order, from queues of its own; it can be
followed, cancelled, and survives a crash between and within its turns."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables.aio import TableServiceClient
from standardwebhooks import Webhook

from shared.adapters.table_backfills import BACKFILLS_TABLE, TableBackfillStore
from shared.adapters.tables import storage_client_options
from shared.clock import SystemClock
from shared.config import DEFAULT_RETRY_SCHEDULE
from shared.events.cursor import encode_cursor
from shared.events.dispatch import INBOUND_QUEUE
from shared.events.log import Position
from shared.identity.authorization import AccessRule, Action, ResourcePolicy
from shared.messaging import OutgoingMessage
from shared.subscriptions.backfill import (
    BACKFILL_PUSH_QUEUE,
    BACKFILL_QUEUE,
    Backfill,
    BackfillProgress,
    BackfillPushes,
    Backfills,
    BackfillState,
    BackfillTurn,
    Outcomes,
)
from shared.subscriptions.delivery import RetryPolicy
from shared.subscriptions.endpoint_guard import EndpointGuard
from shared.subscriptions.health import SubscriptionEvents, SubscriptionHealth
from shared.subscriptions.messages import OUTBOUND_QUEUE, RETRY_QUEUE, DeliveryBatch, ValidationMessage
from shared.subscriptions.model import Status
from shared.subscriptions.outbound import OutboundWorker
from shared.subscriptions.ports import Final
from tests.subscriptions.conftest import active_subscription
from tests.support.events import event, next_link, publish
from tests.support.fakes import RecordingBus
from tests.support.identities import random_org
from tests.support.pipeline import clear, drain, take
from tests.support.receiver import Behaviour

BACKFILL = (BACKFILL_QUEUE, BACKFILL_PUSH_QUEUE)
CONSUMER = "org:991825827"
PAST = "2000-01-01T00:00:00Z"


@pytest.fixture(autouse=True)
async def empty_queues(stores):
    """These tests drain the backfill queues to the end: they start empty (the session shares them)."""
    await clear(stores, (*BACKFILL, OUTBOUND_QUEUE, RETRY_QUEUE))


def subscriber(issuer, sub: str = CONSUMER) -> dict[str, str]:
    return issuer.headers("events.subscribe", sub=sub)


async def start(client, issuer, subscription_id: str, body: dict, sub: str = CONSUMER):
    return await client.post(
        f"/api/v1/subscriptions/{subscription_id}/backfill", json=body, headers=subscriber(issuer, sub)
    )


async def progress(client, issuer, subscription_id: str, backfill_id: str, sub: str = CONSUMER) -> dict:
    response = await client.get(
        f"/api/v1/subscriptions/{subscription_id}/backfills/{backfill_id}", headers=subscriber(issuer, sub)
    )
    assert response.status_code == 200, response.text
    return response.json()


def pushes(receiver, path: str) -> list:
    """The events pushed to ``path`` (the validation event left out), in the order they arrived."""
    return [p for p in receiver.posts(path) if json.loads(p.body)["type"] != "platform.events.validatesubscription"]


def ids(posts: Sequence) -> list[str]:
    return [json.loads(p.body)["id"] for p in posts]


def counts(view: dict) -> dict:
    names = ("state", "scanComplete", "scanned", "matched", "unauthorized", "pushed", "failed", "dropped")
    return {name: view[name] for name in names}


async def test_a_backfill_from_a_time_pushes_the_events_stored_since_signed_and_in_log_order(
    client, issuer, receiver, resource, stores
):
    publisher = issuer.headers("events.publish", "events.read")
    await publish(client, publisher, [event(resource, "before-1"), event(resource, "before-2")])
    await asyncio.sleep(0.05)
    since = datetime.now(UTC)
    await asyncio.sleep(0.05)
    expected = []
    for n in range(4):  # rows of their own, each with a few events
        batch = [event(resource, f"after-{n}-{k}", data={"n": n, "k": k}) for k in range(3)]
        await publish(client, publisher, batch)
        expected += [e["id"] for e in batch]
    # Subscribed only now: none of these was pushed live.
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("hook"), "resourceFilter": resource}
    )

    started = await start(client, issuer, sub["id"], {"from": since.isoformat()})
    assert started.status_code == 202, started.text
    backfill = started.json()
    assert backfill["state"] == "running" and backfill["id"].startswith("bf_")
    assert started.headers["location"] == f"/api/v1/subscriptions/{sub['id']}/backfills/{backfill['id']}"
    await drain(stores, BACKFILL)  # only the backfill's own queues: the live ones are not used

    posts = pushes(receiver, "hook")
    assert ids(posts) == expected
    stored = (await client.get("/api/v1/events", params={"resource": resource, "size": 100}, headers=publisher)).json()
    by_id = {e["id"]: e for e in stored}
    for post in posts:
        Webhook(sub["secret"]).verify(post.body.decode(), post.headers)  # raises if the signature is wrong
        assert json.loads(post.body) == by_id[json.loads(post.body)["id"]]
    assert counts(await progress(client, issuer, sub["id"], backfill["id"])) == {
        "state": "completed",
        "scanComplete": True,
        "scanned": 12,
        "matched": 12,
        "unauthorized": 0,
        "pushed": 12,
        "failed": 0,
        "dropped": 0,
    }
    deliveries = await client.get(f"/api/v1/subscriptions/{sub['id']}/deliveries", headers=subscriber(issuer))
    assert sorted(d["eventId"] for d in deliveries.json()["deliveries"]) == sorted(expected)

    # A time ends a range too: what was stored before it.
    earlier = await start(client, issuer, sub["id"], {"from": "2000-01-01T01:00:00+01:00", "to": since.isoformat()})
    assert earlier.status_code == 202, earlier.text
    await drain(stores, BACKFILL)
    assert ids(pushes(receiver, "hook"))[len(expected) :] == ["before-1", "before-2"]


async def test_a_backfilled_push_carries_the_webhook_id_of_the_live_push(client, issuer, receiver, resource, stores):
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("live"), "resourceFilter": resource}
    )
    await publish(client, issuer.headers("events.publish"), [event(resource, f"e{n}") for n in range(5)])
    await drain(stores, (INBOUND_QUEUE, OUTBOUND_QUEUE))
    live = {json.loads(p.body)["id"]: p.headers["webhook-id"] for p in pushes(receiver, "live")}
    assert len(live) == 5

    started = await start(client, issuer, sub["id"], {"from": PAST})
    assert started.status_code == 202, started.text
    await drain(stores, BACKFILL)

    again = pushes(receiver, "live")[5:]
    assert ids(again) == [f"e{n}" for n in range(5)]
    assert {json.loads(p.body)["id"]: p.headers["webhook-id"] for p in again} == live


async def test_a_backfill_longer_than_a_message_goes_on_as_the_endpoint_takes_its_pushes(
    client, issuer, receiver, resource, stores
):
    await publish(client, issuer.headers("events.publish"), [event(resource, f"m{n}") for n in range(300)])
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("many"), "resourceFilter": resource}
    )
    started = await start(client, issuer, sub["id"], {"from": PAST})
    await drain(stores, BACKFILL)

    # One push at a time, in log order; the second page was scanned once the first was pushed.
    assert ids(pushes(receiver, "many")) == [f"m{n}" for n in range(300)]
    assert receiver.max_in_flight["/many"] == 1
    view = await progress(client, issuer, sub["id"], started.json()["id"])
    assert (view["state"], view["scanned"], view["pushed"]) == ("completed", 300, 300)


async def test_a_range_between_two_read_cursors(client, issuer, receiver, resource, stores):
    reader = issuer.headers("events.read", "events.publish")
    await publish(client, reader, [event(resource, f"c{n}") for n in range(8)])  # one request: packed rows
    first = await client.get("/api/v1/events", params={"resource": resource, "size": 2}, headers=reader)
    second = await client.get(next_link(first), headers=reader)
    third = await client.get(next_link(second), headers=reader)
    assert [e["id"] for e in second.json()] == ["c2", "c3"] and [e["id"] for e in third.json()] == ["c4", "c5"]
    after_c1 = next_link(first).split("after=")[1]
    through_c5 = next_link(third).split("after=")[1]
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("cur"), "resourceFilter": resource}
    )

    started = await start(client, issuer, sub["id"], {"from": after_c1, "to": through_c5})
    assert started.status_code == 202, started.text
    assert (started.json()["from"], started.json()["to"]) == (after_c1, through_c5)
    await drain(stores, BACKFILL)

    # After the first cursor, up to and including the second: what a reader following the links saw.
    assert ids(pushes(receiver, "cur")) == ["c2", "c3", "c4", "c5"]
    view = await progress(client, issuer, sub["id"], started.json()["id"])
    assert (view["state"], view["scanned"], view["pushed"], view["position"]) == ("completed", 4, 4, through_c5)


async def test_only_events_matching_the_filters_that_the_consumer_may_receive_are_pushed(
    client, issuer, receiver, resource, services, stores
):
    other = "org:974761076"
    publisher = issuer.headers("events.publish")
    await publish(
        client,
        publisher,
        [
            event(resource, "mine-case", type="no.case.opened", subject=CONSUMER),
            event(resource, "mine-other-type", type="no.tax.filed", subject=CONSUMER),
            event(resource, "theirs-case", type="no.case.closed", subject=other),
            event(resource, "mine-case-2", type="no.case.closed", subject=CONSUMER),
        ],
    )
    sub = await active_subscription(
        client,
        issuer,
        stores,
        {"endPoint": receiver.url("auth"), "resourceFilter": resource, "typeFilter": "no.case.*"},
    )
    # The consumer was an owner when it subscribed; now it may only receive the events about itself.
    await services.access.put_policy(
        resource,
        ResourcePolicy(publishers=["*"], rules=[AccessRule(roles=["self"], actions=[Action.READ, Action.SUBSCRIBE])]),
    )

    started = await start(client, issuer, sub["id"], {"from": PAST})
    await drain(stores, BACKFILL)

    assert ids(pushes(receiver, "auth")) == ["mine-case", "mine-case-2"]
    assert counts(await progress(client, issuer, sub["id"], started.json()["id"])) == {
        "state": "completed",
        "scanComplete": True,
        "scanned": 4,
        "matched": 2,
        "unauthorized": 1,
        "pushed": 2,
        "failed": 0,
        "dropped": 0,
    }


async def test_a_cancelled_backfill_stops_scanning_and_drops_what_it_queued(client, issuer, receiver, resource, stores):
    await publish(client, issuer.headers("events.publish"), [event(resource, f"n{n}") for n in range(300)])
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("cxl"), "resourceFilter": resource}
    )
    started = await start(client, issuer, sub["id"], {"from": PAST})
    backfill = started.json()["id"]
    await drain(stores, (BACKFILL_QUEUE,))  # the first turn: one message of 256 deliveries queued, not pushed

    cancelled = await client.post(
        f"/api/v1/subscriptions/{sub['id']}/backfills/{backfill}/cancel", headers=subscriber(issuer)
    )
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    await asyncio.sleep(0.6)  # the next turn was sent as a wait
    await drain(stores, BACKFILL)

    assert pushes(receiver, "cxl") == []
    view = await progress(client, issuer, sub["id"], backfill)
    assert counts(view) == {
        "state": "cancelled",
        "scanComplete": False,
        "scanned": 256,
        "matched": 256,
        "unauthorized": 0,
        "pushed": 0,
        "failed": 0,
        "dropped": 256,
    }
    # Cancelling again changes nothing; the subscription may start another backfill at once.
    again = await client.post(
        f"/api/v1/subscriptions/{sub['id']}/backfills/{backfill}/cancel", headers=subscriber(issuer)
    )
    assert again.json()["state"] == "cancelled"
    assert (await start(client, issuer, sub["id"], {"from": PAST})).status_code == 202


async def test_another_consumer_finds_none_of_it(client, issuer, receiver, resource, stores):
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("own"), "resourceFilter": resource}
    )
    backfill = (await start(client, issuer, sub["id"], {"from": PAST})).json()["id"]
    stranger = subscriber(issuer, "org:974761076")
    base = f"/api/v1/subscriptions/{sub['id']}"
    answers = [
        await client.post(f"{base}/backfill", json={"from": PAST}, headers=stranger),
        await client.get(f"{base}/backfills/{backfill}", headers=stranger),
        await client.post(f"{base}/backfills/{backfill}/cancel", headers=stranger),
        # The owner asking for a backfill id that is not there.
        await client.get(f"{base}/backfills/bf_{uuid.uuid4().hex}", headers=subscriber(issuer)),
    ]
    for answer in answers:
        assert answer.status_code == 404, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
    assert (await progress(client, issuer, sub["id"], backfill))["state"] == "running"  # not cancelled


async def test_bad_input_is_a_problem_and_starts_nothing(client, issuer, receiver, resource, services, stores):
    reader = issuer.headers("events.read", "events.publish")
    await publish(client, reader, [event(resource, "x1"), event(resource, "x2")])
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("bad"), "resourceFilter": resource}
    )
    elsewhere = f"{resource}-elsewhere"
    from tests.conftest import open_resource

    await open_resource(services, elsewhere)
    await publish(client, reader, [event(elsewhere, "y1")])
    foreign = next_link(await client.get("/api/v1/events", params={"resource": elsewhere}, headers=reader))
    now = datetime.now(UTC)
    bodies = {
        "not a time or cursor": {"from": "yesterday"},
        "a time without offset": {"from": "2026-01-01T00:00:00"},
        "an impossible date": {"from": "2026-13-01T00:00:00Z"},
        "no from": {"to": PAST},
        "an unknown field": {"from": PAST, "speed": "fast"},
        "to before from": {"from": now.isoformat(), "to": (now - timedelta(hours=1)).isoformat()},
        "a future from": {"from": (now + timedelta(days=1)).isoformat()},
        "another resource's cursor": {"from": foreign.split("after=")[1]},
        "a cursor past the log": {"from": encode_cursor(resource, Position(999_999, 0))},
    }
    for name, body in bodies.items():
        answer = await start(client, issuer, sub["id"], body)
        assert answer.status_code == 400, (name, answer.text)
        assert answer.headers["content-type"] == "application/problem+json", name
    assert await take(stores, BACKFILL_QUEUE, lambda body: sub["id"].encode() in body, visibility_timeout=1) == []

    # Not a webhook subscription, or not active: refused as well.
    notifying = await client.post(
        "/api/v1/subscriptions",
        json={
            "resourceFilter": resource,
            "notification": {"notificationChannel": "Email", "emailTemplate": {"subject": "s", "body": "b"}},
        },
        headers=issuer.headers("events.subscribe", "notifications.order"),
    )
    assert notifying.status_code == 201, notifying.text
    assert (await start(client, issuer, notifying.json()["id"], {"from": PAST})).status_code == 400
    pending = await client.post(
        "/api/v1/subscriptions",
        json={"endPoint": receiver.url("pending"), "resourceFilter": resource},
        headers=subscriber(issuer),
    )
    refused = await start(client, issuer, pending.json()["id"], {"from": PAST})
    assert refused.status_code == 409 and refused.headers["content-type"] == "application/problem+json"

    # One backfill of a subscription scans at a time; nothing above left one behind.
    first = await start(client, issuer, sub["id"], {"from": PAST})
    assert first.status_code == 202, first.text
    second = await start(client, issuer, sub["id"], {"from": PAST})
    assert second.status_code == 409 and second.json()["backfill"] == first.json()["id"]


class FailingOnce:
    """Service Bus as a test wants it: the ``nth`` send to ``queue`` fails (the process dies there);
    every other send reaches the real queue."""

    def __init__(self, bus, queue: str, nth: int) -> None:
        self._bus, self._queue, self._nth, self.sends = bus, queue, nth, 0

    async def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        if queue == self._queue:
            self.sends += 1
            if self.sends == self._nth:
                raise ConnectionError("the process died here")
        await self._bus.send(queue, messages)

    async def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("queue", "nth"),
    [
        (BACKFILL_PUSH_QUEUE, 2),  # a turn dies after scanning, before its deliveries were queued
        (BACKFILL_QUEUE, 2),  # a turn dies after saving its cursor, before the next turn was sent
    ],
)
async def test_a_turn_that_dies_is_redelivered_and_resumes_from_the_saved_cursor(
    client, issuer, receiver, resource, services, stores, queue, nth
):
    await publish(client, issuer.headers("events.publish"), [event(resource, f"r{n}") for n in range(10)])
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("crash"), "resourceFilter": resource}
    )
    backfill = (await start(client, issuer, sub["id"], {"from": PAST})).json()["id"]
    bus = FailingOnce(stores.bus, queue, nth)
    # Herald's backfill, with small turns (3 events) and turns that need not wait for pushes.
    backfills = Backfills(
        store=stores.backfills,
        subscriptions=stores.subscription_store,
        reader=services.reader,
        event_log=stores.event_log,
        authorizer=services.access.authorizer,
        bus=bus,
        clock=SystemClock(),
        turn_events=3,
        window=1000,
    )
    died = 0
    for _ in range(30):
        messages = await take(stores, BACKFILL_QUEUE, lambda body: backfill.encode() in body, visibility_timeout=1)
        if not messages:
            break
        for body in messages:
            turn = BackfillTurn.model_validate_json(body)
            try:
                await backfills.advance(turn)
            except ConnectionError:
                died += 1
                await backfills.advance(turn, redelivered=True)  # the message comes again after its lock expired
    assert died == 1
    await drain(stores, (BACKFILL_PUSH_QUEUE,))

    # Every event once, in log order: nothing skipped, nothing scanned twice.
    assert ids(pushes(receiver, "crash")) == [f"r{n}" for n in range(10)]
    assert counts(await progress(client, issuer, sub["id"], backfill)) == {
        "state": "completed",
        "scanComplete": True,
        "scanned": 10,
        "matched": 10,
        "unauthorized": 0,
        "pushed": 10,
        "failed": 0,
        "dropped": 0,
    }


async def test_a_failed_backfilled_push_is_retried_from_the_backfill_queue_and_counted_once_it_ends(
    client, issuer, receiver, resource, services, stores
):
    url = receiver.behave("flaky", Behaviour(status=lambda n: 500 if n == 2 else 200))  # 1: the validation
    await publish(client, issuer.headers("events.publish"), [event(resource, f"f{n}") for n in range(3)])
    sub = await active_subscription(client, issuer, stores, {"endPoint": url, "resourceFilter": resource})
    backfill = (await start(client, issuer, sub["id"], {"from": PAST})).json()["id"]
    await drain(stores, (BACKFILL_QUEUE,))
    queued = await take(stores, BACKFILL_PUSH_QUEUE, lambda body: backfill.encode() in body, visibility_timeout=1)
    bus = RecordingBus()
    backfill_pushes = backfill_worker(stores, services, bus, RetryPolicy(DEFAULT_RETRY_SCHEDULE, timedelta(hours=24)))

    [body] = queued
    await backfill_pushes.handle(DeliveryBatch.model_validate_json(body).deliveries(), message_id="first")
    # The first push failed: it and the rest of its message wait on the backfill's own queue, tagged.
    assert bus.take(RETRY_QUEUE) == []
    again = bus.take(BACKFILL_PUSH_QUEUE)
    assert again and all(DeliveryBatch.model_validate_json(m.body).b == backfill for m in again)
    view = await progress(client, issuer, sub["id"], backfill)
    assert (view["state"], view["matched"], view["pushed"]) == ("running", 3, 0)

    for message in again:
        await backfill_pushes.handle(
            DeliveryBatch.model_validate_json(message.body).deliveries(), message_id=message.message_id
        )
    assert sorted(ids(pushes(receiver, "flaky"))) == ["f0", "f0", "f1", "f2"]
    view = await progress(client, issuer, sub["id"], backfill)
    assert (view["state"], view["pushed"], view["failed"]) == ("completed", 3, 0)


async def test_a_backfill_of_a_subscription_that_includes_subunits_pushes_its_subunits_events(
    client, issuer, receiver, resource, stores
):
    main, subunit, unrelated = (random_org().removeprefix("org:") for _ in range(3))
    loaded = await client.put(
        "/api/v1/admin/contacts/organizations",
        json={
            "organizations": [
                {"organizationNumber": main, "name": "Hovedenhet AS"},
                {"organizationNumber": subunit, "name": "Avdeling Bergen", "parentOrganizationNumber": main},
                {"organizationNumber": unrelated, "name": "Annen AS"},
            ]
        },
        headers=issuer.headers("admin", sub="system:herald-admin"),
    )
    assert loaded.status_code == 200, loaded.text
    await publish(
        client,
        issuer.headers("events.publish"),
        [
            event(resource, "about-the-subunit", subject=f"org:{subunit}"),
            event(resource, "about-another", subject=f"org:{unrelated}"),
            event(resource, "about-the-main-unit", subject=f"org:{main}"),
        ],
    )
    sub = await active_subscription(
        client,
        issuer,
        stores,
        {
            "endPoint": receiver.url("units"),
            "resourceFilter": resource,
            "subjectFilter": f"org:{main}",
            "includeSubunits": True,
        },
    )

    started = await start(client, issuer, sub["id"], {"from": PAST})
    await drain(stores, BACKFILL)

    # As the live push matched them: the subunit's events too, in log order.
    assert ids(pushes(receiver, "units")) == ["about-the-subunit", "about-the-main-unit"]
    view = await progress(client, issuer, sub["id"], started.json()["id"])
    assert (view["state"], view["scanned"], view["matched"], view["pushed"]) == ("completed", 3, 2, 2)


def backfill_worker(stores, services, bus, policy: RetryPolicy) -> BackfillPushes:
    """The backfill's push worker as Herald builds it, on a bus the test holds (to replay retries at once)."""
    progress_ = BackfillProgress(stores.backfills, bus)
    worker = OutboundWorker(
        store=stores.subscription_store,
        event_log=stores.event_log,
        delivery_log=stores.delivery_log,
        dead_letters=stores.dead_letters,
        bus=bus,
        client=stores.webhooks,
        guard=EndpointGuard(failure_threshold=10_000),
        health=SubscriptionHealth(
            stores.subscription_store,
            SubscriptionEvents(services.publisher, SystemClock()),
            SystemClock(),
            disable_after=timedelta(days=5),
        ),
        clock=SystemClock(),
        policy=policy,
        timeout_seconds=5,
        origin="herald.test",
        authorizer=services.access.authorizer,
        retry_queue=BACKFILL_PUSH_QUEUE,
        listener=progress_,
        in_order=True,
    )
    return BackfillPushes(worker, stores.backfills, progress_)


async def push_as_service_bus_would(pushes_: BackfillPushes, bus: RecordingBus, first: bytes) -> None:
    """The first message, then whatever it queued, always the message due first next (without waiting)."""
    due: list[OutgoingMessage] = [OutgoingMessage(body=first, message_id="first")]
    while due:
        due.sort(key=lambda m: m.deliver_at or datetime.min.replace(tzinfo=UTC))
        message = due.pop(0)
        await pushes_.handle(
            DeliveryBatch.model_validate_json(message.body).deliveries(), message_id=message.message_id
        )
        due += bus.take(BACKFILL_PUSH_QUEUE)


@pytest.mark.parametrize(
    ("policy", "failing", "pushed", "failed"),
    [
        # e1 fails twice, and is retried: the rest waits behind it, in its retry message, until it went.
        (
            RetryPolicy(DEFAULT_RETRY_SCHEDULE, timedelta(hours=24)),
            (3, 4),
            ["e0", "e1", "e1", "e1", "e2", "e3", "e4"],
            0,
        ),
        # e1 is dead after its first failure (a retry would come after the horizon): the rest goes on after it.
        (RetryPolicy((60,), timedelta(seconds=30)), (3,), ["e0", "e1", "e2", "e3", "e4"], 1),
    ],
)
async def test_a_backfilled_push_that_fails_keeps_the_log_order(
    client, issuer, receiver, resource, services, stores, policy, failing, pushed, failed
):
    # Request 1 is the validation, 2 is e0, 3 is e1's first attempt.
    url = receiver.behave("ordered", Behaviour(status=lambda n: 500 if n in failing else 200))
    await publish(client, issuer.headers("events.publish"), [event(resource, f"e{n}") for n in range(5)])
    sub = await active_subscription(client, issuer, stores, {"endPoint": url, "resourceFilter": resource})
    backfill = (await start(client, issuer, sub["id"], {"from": PAST})).json()["id"]
    await drain(stores, (BACKFILL_QUEUE,))
    [queued] = await take(stores, BACKFILL_PUSH_QUEUE, lambda body: backfill.encode() in body, visibility_timeout=1)

    bus = RecordingBus()
    await push_as_service_bus_would(backfill_worker(stores, services, bus, policy), bus, queued)

    assert ids(pushes(receiver, "ordered")) == pushed
    assert receiver.max_in_flight["/ordered"] == 1
    view = await progress(client, issuer, sub["id"], backfill)
    assert (view["state"], view["pushed"], view["failed"]) == ("completed", 5 - failed, failed)


async def test_reading_progress_reads_running_totals_however_many_messages_were_counted(settings, stores):
    """Each settle adds to the totals: a read is one row, not one per message the backfill pushed."""
    read: list[int] = []

    def count(pipeline_response) -> None:  # entities that came back from each request
        try:
            body = pipeline_response.http_response.body()
        except ValueError:  # a streamed answer: a transaction's, which reads nothing
            return
        read.append(len(json.loads(body).get("value", [None])) if body else 0)

    service = TableServiceClient.from_connection_string(
        settings.storage_connection_string, raw_response_hook=count, **storage_client_options()
    )
    async with service:
        store = TableBackfillStore(service)
        backfill = a_backfill()
        assert await store.create(backfill) is None
        for n in range(40):
            await store.record_outcomes(backfill.subscription_id, backfill.id, f"m{n}", {f"d{n}": Final.PUSHED})
        # A message settled again (after a crash) counts only what it did not count yet.
        await store.record_outcomes(
            backfill.subscription_id, backfill.id, "m0", {"d0": Final.PUSHED, "d-late": Final.FAILED}
        )
        read.clear()
        assert await store.outcomes(backfill.subscription_id, backfill.id) == Outcomes(pushed=40, failed=1)
        assert read == [1]


def a_backfill(*, scan_done: bool = True, state: BackfillState = BackfillState.RUNNING) -> Backfill:
    now = datetime.now(UTC)
    return Backfill(
        id=f"bf_{uuid.uuid4().hex}",
        subscription_id=f"sub_{uuid.uuid4().hex}",
        consumer=CONSUMER,
        resource="urn:test:backfill",
        start=Position(0, 0),
        end=Position(10, 0),
        cursor=Position(10, 0) if scan_done else Position(0, 0),
        state=state,
        created=now,
        updated=now,
        scan_done=scan_done,
    )


async def rows_of(stores, subscription_id: str) -> list[str]:
    table = stores.tables.get_table_client(BACKFILLS_TABLE)
    return [
        e["RowKey"]
        async for e in table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": subscription_id}, select=["RowKey"]
        )
    ]


async def test_a_backfill_waits_while_a_new_endpoint_is_validated_and_pushes_there(
    client, issuer, receiver, resource, herald, stores
):
    await publish(client, issuer.headers("events.publish"), [event(resource, f"v{n}") for n in range(3)])
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("bf-old"), "resourceFilter": resource}
    )
    backfill = (await start(client, issuer, sub["id"], {"from": PAST})).json()["id"]
    patched = await client.patch(
        f"/api/v1/subscriptions/{sub['id']}", json={"endPoint": receiver.url("bf-new")}, headers=subscriber(issuer)
    )
    assert patched.status_code == 200 and patched.json()["status"] == "pending"

    await drain(stores, BACKFILL)  # its turn finds the subscription pending: it waits, it does not fail
    view = await progress(client, issuer, sub["id"], backfill)
    assert (view["state"], view["matched"]) == ("running", 0), view
    assert pushes(receiver, "bf-new") == [] and pushes(receiver, "bf-old") == []

    key = (await stores.subscription_store.get(CONSUMER, sub["id"])).index_key
    assert await herald.services.validation.validate(ValidationMessage(key=key, id=sub["id"])) is Status.ACTIVE
    deadline = asyncio.get_running_loop().time() + 15
    while view["state"] == "running" and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.3)  # the waiting turn is a delayed message
        await drain(stores, BACKFILL)
        view = await progress(client, issuer, sub["id"], backfill)
    assert (view["state"], view["pushed"]) == ("completed", 3), view
    assert ids(pushes(receiver, "bf-new")) == ["v0", "v1", "v2"] and pushes(receiver, "bf-old") == []


async def test_a_deleted_subscription_takes_its_backfills_with_it(client, issuer, receiver, resource, stores):
    await publish(client, issuer.headers("events.publish"), [event(resource, f"d{n}") for n in range(3)])
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("gone"), "resourceFilter": resource}
    )
    started = await start(client, issuer, sub["id"], {"from": PAST})
    await drain(stores, BACKFILL)
    assert (await progress(client, issuer, sub["id"], started.json()["id"]))["state"] == "completed"
    assert await rows_of(stores, sub["id"])  # the backfill, its totals, what each message counted

    deleted = await client.delete(f"/api/v1/subscriptions/{sub['id']}", headers=subscriber(issuer))
    assert deleted.status_code == 204, deleted.text
    assert await rows_of(stores, sub["id"]) == []


async def test_finished_backfills_expire_with_the_delivery_log_and_running_ones_stay(stores):
    finished, cancelled, scanning = (
        a_backfill(),
        a_backfill(scan_done=False, state=BackfillState.CANCELLED),
        a_backfill(scan_done=False),
    )
    for backfill in (finished, cancelled, scanning):
        assert await stores.backfills.create(backfill) is None
        await stores.backfills.record_outcomes(backfill.subscription_id, backfill.id, "m", {"d": Final.PUSHED})
    now = datetime.now(UTC)
    assert await stores.backfills.expire(now) >= 0  # nothing of these is old enough yet
    assert all([await rows_of(stores, b.subscription_id) for b in (finished, cancelled, scanning)])

    await stores.backfills.expire(now + timedelta(days=15))  # past the 14 days of the delivery log

    assert await rows_of(stores, finished.subscription_id) == []
    assert await rows_of(stores, cancelled.subscription_id) == []
    assert await stores.backfills.get(scanning.subscription_id, scanning.id) is not None
