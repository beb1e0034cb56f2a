"""A hanging endpoint does not delay a healthy one: the real function app under devhost, in-process."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from devhost import DevHost, DevHostOptions
from shared.composition.storage import QUEUES
from shared.config import load_settings
from shared.subscriptions.endpoint_guard import EndpointGuard
from shared.subscriptions.messages import RETRY_QUEUE, DeliveryBatch
from tests.subscriptions.conftest import active_subscription, worker_with
from tests.support.events import event, publish
from tests.support.fakes import FakeClock, RecordingBus
from tests.support.installed_herald import installed_herald
from tests.support.pipeline import clear
from tests.support.receiver import Behaviour


@pytest.fixture
async def slow_timeout_services(azurite, issuer):
    settings = load_settings(
        {
            "HeraldStorage": azurite.connection_string,
            "HERALD_AUTH_JWKS_PATH": str(issuer.jwks_path),
            # Longer than the test waits: the hanging endpoint never answers or times out meanwhile.
            "HERALD_WEBHOOK_TIMEOUT_SECONDS": "120",
            "HERALD_SECRET_KEY_PATH": str(issuer.jwks_path.parent / "secret.key"),
        }
    )
    async with installed_herald(settings) as built:
        yield built


async def test_hanging_endpoint_does_not_slow_a_healthy_one(client, issuer, receiver, resource, slow_timeout_services):
    from function_app import app
    from tests.support.functions_index import functions  # noqa: F401  (indexes the app once per session)

    services, stores = slow_timeout_services.services, slow_timeout_services.stores
    await active_subscription(client, issuer, stores, {"endPoint": receiver.url("healthy"), "resourceFilter": resource})
    hanging = receiver.behave("hanging", Behaviour(status=200))
    await active_subscription(client, issuer, stores, {"endPoint": hanging, "resourceFilter": resource})
    released = asyncio.Event()
    receiver.behaviours["/hanging"] = Behaviour(status=200, hold=released)  # answers only when the test says

    options = DevHostOptions(
        port=0,
        storage_connection_string=services.settings.storage_connection_string,
        route_prefix="",
        provision_app=False,
        max_idle_wait=0.1,
    )
    # Timed: the hosted functions must not also work through what earlier tests left in the queues.
    await clear(stores, QUEUES)
    async with DevHost(app, options):
        for i in range(40):
            await publish(client, issuer.headers("events.publish"), [event(resource, f"h{i}")])
        published = time.monotonic()
        while (
            len({json.loads(p.body)["id"] for p in receiver.posts("healthy")} - {None}) < 41
            and time.monotonic() - published < 90
        ):
            await asyncio.sleep(0.05)
        # Every healthy delivery arrived while the hanging endpoint had answered nothing at all.
        unanswered = receiver.in_flight["/hanging"]
        released.set()

    received = [json.loads(p.body)["id"] for p in receiver.posts("healthy")]
    assert sorted(i for i in received if i.startswith("h")) == sorted(f"h{i}" for i in range(40))
    assert unanswered >= 1 and receiver.max_in_flight["/hanging"] <= 2


async def test_a_message_settles_its_healthy_deliveries_without_waiting_for_a_hanging_endpoint(
    client, issuer, receiver, resource, services, stores, herald
):
    """One outbound message to a busy healthy endpoint and a hanging one: the healthy deliveries
    deferred at the busy endpoint's cap are queued for retry at once, and the hanging endpoint
    costs the message one timeout, not one per delivery."""
    from tests.subscriptions.test_push import first_outbound

    healthy = receiver.url("healthy")
    hanging = receiver.behave("hanging", Behaviour(status=200))
    for url in (healthy, hanging):
        await active_subscription(client, issuer, stores, {"endPoint": url, "resourceFilter": resource})
    receiver.behaviours["/hanging"] = Behaviour(status=200, delay=30)
    await publish(client, issuer.headers("events.publish"), [event(resource, f"m{i}") for i in range(6)])
    batch = await first_outbound(stores, resource)

    clock, bus = FakeClock(), RecordingBus()
    guard = EndpointGuard()
    worker = worker_with(herald, clock, bus, (10, 30), guard=guard, timeout_seconds=2)
    # Another message holds the healthy endpoint's two slow-start slots.
    assert guard.admit(healthy).admitted and guard.admit(healthy).admitted

    tried_before = len(receiver.posts("hanging"))  # the validation handshake
    handled = asyncio.create_task(worker.handle(batch.deliveries()))
    deadline = time.monotonic() + 1.5  # well inside the hanging endpoint's 2 s timeout
    while not bus.sent and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    deferred = [d for m in bus.take(RETRY_QUEUE) for d in DeliveryBatch.model_validate_json(m.body).deliveries()]
    assert handled.done() is False  # the hanging endpoint's two requests are still out
    assert len(deferred) == 6 and {d.attempt for d in deferred} == {1}  # every healthy delivery, not yet tried

    await handled
    # Both hanging requests timed out together; the other four were deferred, not tried one by one.
    assert len(receiver.posts("hanging")) - tried_before == 2 and receiver.max_in_flight["/hanging"] == 2
    later = [d for m in bus.take(RETRY_QUEUE) for d in DeliveryBatch.model_validate_json(m.body).deliveries()]
    assert sorted(d.attempt for d in later) == [1, 1, 1, 1, 2, 2]
