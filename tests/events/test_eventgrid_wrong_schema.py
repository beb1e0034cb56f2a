"""Event Grid deliveries in the wrong schema, or not events at all, are refused cleanly and recorded,
never answered with an exception: Event Grid retries an exception for a day.

- ``ingest_event_grid`` (custom topic → ``events-eventgrid``) expects one CloudEvent per message: an
  Event Grid-schema event, an array, a number or non-JSON is logged with its reason, counted in
  ``herald.ingest.refused`` and completed.
- The delivery-report functions (ACS system topic, Event Grid schema) park a CloudEvent, or an event
  whose data is no object, count it in ``herald.reports.refused`` and return; devhost's webhook in
  front of them is tested in tests/e2e/test_eventgrid_webhook_schema.py.
"""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from shared.notifications.model import Channel
from tests.events.test_eventgrid_ingest import GRID, refusal_reasons, refused_count, route, topic_publishes_as
from tests.events.test_eventgrid_ingest import meter as meter  # the fixture
from tests.support.events import event
from tests.support.metrics import metric_points


@pytest.fixture(autouse=True)
def topic_identity(services):
    topic_publishes_as(services, GRID)


def event_grid_schema(resource: str) -> dict[str, object]:
    """What a topic with the Event Grid input schema delivers: the same event in the other schema."""
    return {
        "id": "grid-schema-1",
        "topic": "/subscriptions/x/resourceGroups/y/providers/Microsoft.EventGrid/topics/herald",
        "subject": "person:01017012343",
        "eventType": "no.example.case.created",
        "eventTime": "2026-05-01T12:00:00Z",
        "data": {"resource": resource, "caseId": "42"},
        "dataVersion": "1.0",
    }


async def test_bodies_that_are_not_one_cloudevent_are_refused_logged_and_counted(
    client, issuer, services, resource, caplog, meter, stores
):
    bodies = {
        "an Event Grid-schema event": json.dumps(event_grid_schema(resource)).encode(),
        "an Event Grid-schema array": json.dumps([event_grid_schema(resource)]).encode(),
        "a CloudEvent in an array": json.dumps([event(resource, "in-array")]).encode(),
        "a number": b"42",
        "a string": b'"hello"',
        "null": b"null",
        "not JSON": b"<event/>",
        "not UTF-8": b"\xff\xfe{}",
        "empty": b"",
    }
    before = refused_count(meter, "invalid")
    with caplog.at_level(logging.WARNING, logger="shared.events.ingest"):
        handled = await route(stores, *bodies.values())
    assert handled == len(bodies)  # every message completed: nothing raised, nothing redelivered
    reasons = refusal_reasons(caplog)
    assert len(reasons) == len(bodies), reasons
    assert "specversion: is required; source: is required; type: is required" in reasons[0]
    assert refused_count(meter, "invalid") - before == len(bodies)
    read = await client.get("/api/v1/events", params={"resource": resource}, headers=issuer.headers("events.read"))
    assert read.json() == []


def report_refusals(reader) -> dict[str, int]:
    """The refused delivery reports counted since the last read, by reason (the reader reports deltas)."""
    counts: dict[str, int] = {}
    for point in metric_points(reader).get("herald.reports.refused", []):
        reason = str(point.attributes.get("reason"))
        counts[reason] = counts.get(reason, 0) + int(point.value)
    return counts


async def test_delivery_reports_in_the_wrong_shape_are_parked_and_counted(services, meter):
    """The delivery-report functions, given what the worker's converter makes of each event: a
    CloudEvent, or an Event Grid event whose data is no object, returns (no retry), parked and counted."""
    import azure.functions as func

    from devhost.bindings import decode, event_grid_input
    from functions import delivery_reports

    cloud = {"specversion": "1.0", "id": f"ce-{uuid.uuid4().hex[:8]}", "source": "/acs", "type": "T", "data": {}}
    grid = {
        "id": f"eg-{uuid.uuid4().hex[:8]}",
        "subject": "sender/x/message/m-1",
        "eventType": "Microsoft.Communication.SMSDeliveryReportReceived",
        "eventTime": "2026-05-01T12:00:00Z",
        "data": "m-1 delivered",
        "dataVersion": "1.0",
    }
    handler = delivery_reports.sms_delivery_report._function.get_user_function()
    for sent in (cloud, grid):
        await handler(decode("eventGridTrigger", func.EventGridEvent, event_grid_input("sms_delivery_report", sent)))
    parked = {r["reference"]: r["reason"] for r in await services.notifications.reports.parked(Channel.SMS)}
    assert parked[f"event:{cloud['id']}"] == "CLOUDEVENTS_SCHEMA"
    assert parked[f"event:{grid['id']}"] == "DATA_NOT_AN_OBJECT"
    assert report_refusals(meter) == {"CLOUDEVENTS_SCHEMA": 1, "DATA_NOT_AN_OBJECT": 1}
