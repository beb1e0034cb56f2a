"""Fan-out does the extra work of ``includeSubunits`` and ``ordering: subject`` only on resources that
have such subscriptions: the matching index marks them, and the marks are read with the partitions
every event reads anyway."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from azure.data.tables.aio import TableServiceClient

from shared.adapters.table_event_log import TableEventLog
from shared.adapters.table_fanout_marks import TableFanoutMarks
from shared.adapters.table_ordered_lanes import TableLaneStore
from shared.clock import SystemClock
from shared.events.dispatch import INBOUND_QUEUE, InboundMessage
from shared.subscriptions.fanout import Fanout
from shared.subscriptions.ordering import OrderedLanes
from shared.subscriptions.subunits import MainUnits
from tests.conftest import open_resource
from tests.subscriptions.conftest import active_subscription
from tests.support.events import event, publish
from tests.support.fakes import RecordingBus
from tests.support.identities import random_org
from tests.support.pipeline import take


class DownRegistry:
    """The contact registry, unreachable."""

    def __init__(self) -> None:
        self.asked = 0

    async def persons(self, nins: Any) -> dict[str, Any]:
        raise ConnectionError("the contact registry is down")

    async def organizations(self, numbers: Any) -> dict[str, Any]:
        self.asked += 1
        raise ConnectionError("the contact registry is down")


async def inbound(stores, *resources: str) -> list[InboundMessage]:
    """The inbound messages of these resources, taken off the queue at once (the others stay hidden a while)."""
    bodies = await take(
        stores, INBOUND_QUEUE, lambda body: any(r.encode() in body for r in resources), visibility_timeout=60
    )
    return sorted((InboundMessage.model_validate_json(b) for b in bodies), key=lambda m: m.seqs[0])


async def test_a_registry_outage_holds_back_only_resources_with_subunit_subscriptions(
    client, issuer, receiver, services, stores
):
    with_subunits = await open_resource(services, f"urn:test:herald:{uuid.uuid4().hex[:12]}")
    without = await open_resource(services, f"urn:test:herald:{uuid.uuid4().hex[:12]}")
    main = random_org()
    wide = await active_subscription(
        client,
        issuer,
        stores,
        {
            "endPoint": receiver.url("wide"),
            "resourceFilter": with_subunits,
            "subjectFilter": main,
            "includeSubunits": True,
        },
    )
    await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("plain"), "resourceFilter": without, "subjectFilter": main}
    )
    for resource in (with_subunits, without):
        await publish(client, issuer.headers("events.publish"), [event(resource, "e-1", subject=main)])
    messages = await inbound(stores, with_subunits, without)
    [held] = [m for m in messages if m.resource == with_subunits]
    [free] = [m for m in messages if m.resource == without]
    registry = DownRegistry()
    fanout = Fanout(
        stores.subscription_store,
        TableFanoutMarks(stores.tables),
        RecordingBus(),
        rows=stores.inbound,
        main_units=MainUnits(registry),
    )

    assert (await fanout.handle(free)).deliveries == 1  # an organisation's event, fanned out with the registry down
    assert registry.asked == 0
    with pytest.raises(ConnectionError):  # retried, not matched without the main units' subscriptions
        await fanout.handle(held)

    # Its last subunit subscription gone, the resource no longer waits for the registry either.
    headers = issuer.headers("events.subscribe", sub="org:991825827")
    assert (await client.delete(f"/api/v1/subscriptions/{wide['id']}", headers=headers)).status_code == 204
    assert (await fanout.handle(held)).deliveries == 0
    assert registry.asked == 1


class RowsRead:
    """Counts the event log's rows (``e…``) and fan-out markers (``f…``) read through a storage client."""

    def __init__(self) -> None:
        self.rows = 0
        self.markers = 0

    def reset(self) -> None:
        self.rows = self.markers = 0

    def __call__(self, response: Any) -> None:
        http = response.http_response
        if http.request.method != "GET" or "/events" not in http.request.url:
            return
        try:
            body = json.loads(http.text())
        except (ValueError, TypeError):
            return
        entities = body.get("value", [body]) if isinstance(body, dict) else []
        for entity in entities:
            key = str(entity.get("RowKey", ""))
            self.rows += key.startswith("e")
            self.markers += key.startswith("f")


async def test_an_ordered_lanes_claim_reads_no_rows_of_messages_that_held_nothing_for_it(
    client, issuer, receiver, resource, settings, stores
):
    """A hot resource's events that match nothing still tell the lanes they are fanned out, so a claim
    reads one small marker per message since the last claim, never the rows themselves."""
    await active_subscription(
        client,
        issuer,
        stores,
        {
            "endPoint": receiver.url("ordered"),
            "resourceFilter": resource,
            "subjectFilter": ["person:1", "person:3"],
            "ordering": "subject",
        },
    )
    headers = issuer.headers("events.publish")
    await publish(client, headers, [event(resource, "first", subject="person:1")])
    unrelated = 25
    for n in range(unrelated):
        await publish(client, headers, [event(resource, f"other-{n}", subject="person:2")])
    await publish(client, headers, [event(resource, "next", subject="person:3")])
    messages = await inbound(stores, resource)
    assert len(messages) == unrelated + 2

    read = RowsRead()
    async with TableServiceClient.from_connection_string(
        settings.storage_connection_string, raw_response_hook=read
    ) as counted:
        bus = RecordingBus()
        lanes = OrderedLanes(
            lanes=TableLaneStore(stores.tables),
            progress=TableFanoutMarks(counted),
            event_log=TableEventLog(counted),
            subscriptions=stores.subscription_store,
            bus=bus,
            clock=SystemClock(),
        )
        fanout = Fanout(
            stores.subscription_store, TableFanoutMarks(stores.tables), bus, rows=stores.inbound, lanes=lanes
        )
        for message in messages[:-1]:  # the first claims its lane (and finds the resource's floor)
            await fanout.handle(message)
        read.reset()
        await fanout.handle(messages[-1])  # another lane's first claim, after the unrelated messages
        assert len(bus.sent) == 2  # both lanes' heads went out
    assert read.rows == 0
    assert read.markers <= unrelated + 2


async def test_the_marks_follow_the_subscriptions_that_need_them(client, issuer, receiver, resource, stores):
    headers = issuer.headers("events.subscribe", sub="org:991825827")

    async def create(payload: dict[str, Any]) -> str:
        response = await client.post(
            "/api/v1/subscriptions", json={"resourceFilter": resource, **payload}, headers=headers
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def marks() -> tuple[bool, bool]:
        key = f"{resource}|*:"
        read = await stores.subscription_store.matching([key])
        return key in read.subunits, key in read.ordered

    assert await marks() == (False, False)
    both = await create(
        {
            "endPoint": receiver.url("both"),
            "subjectFilter": random_org(),
            "includeSubunits": True,
            "ordering": "subject",
        }
    )
    ordered = await create({"endPoint": receiver.url("ordered"), "ordering": "subject"})
    assert await marks() == (True, True)

    changed = await client.patch(f"/api/v1/subscriptions/{both}", json={"includeSubunits": False}, headers=headers)
    assert changed.status_code == 200, changed.text
    assert await marks() == (False, True)
    changed = await client.patch(f"/api/v1/subscriptions/{both}", json={"ordering": "none"}, headers=headers)
    assert changed.status_code == 200, changed.text
    assert await marks() == (False, True)  # the other ordered subscription still needs it
    assert (await client.delete(f"/api/v1/subscriptions/{ordered}", headers=headers)).status_code == 204
    assert await marks() == (False, False)
