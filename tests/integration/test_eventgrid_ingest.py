"""ingest_event_grid: CloudEvents the custom topic routes to events-eventgrid, on the real Azurite queues."""

from __future__ import annotations

import json
import logging

import pytest

from shared.api.events_publish import STRUCTURED
from shared.events.ingest import EVENTGRID_QUEUE
from shared.messaging import OutgoingMessage
from tests.support.events import event
from tests.support.pipeline import drain


async def route(services, *bodies: bytes) -> int:
    """Event Grid's delivery to the queue: one message a CloudEvent, the body as the publisher sent it."""
    messages = [
        OutgoingMessage(body=body, message_id=f"grid-{n}", content_type=STRUCTURED) for n, body in enumerate(bodies)
    ]
    await services.bus.send(EVENTGRID_QUEUE, messages)
    return await drain(services, (EVENTGRID_QUEUE,))


@pytest.mark.parametrize("time", ["2026-11-26T10:00:00+01:00", "2026-11-26T04:00:00.123-05:00"])
async def test_an_event_with_any_utc_offset_is_stored_as_sent(client, issuer, services, resource, time):
    sent = event(resource, "offset-1", time=time, data={"n": 1})
    assert await route(services, json.dumps(sent).encode()) == 1
    read = await client.get("/api/v1/events", params={"resource": resource}, headers=issuer.headers("events.read"))
    assert read.json() == [sent]


async def test_invalid_events_are_dropped_with_their_problems_logged(client, issuer, services, resource, caplog):
    invalid = event(resource, "bad-1", time="26.11.2026 10:00")
    without_resource = {key: value for key, value in event(resource, "bad-2").items() if key != "resource"}
    with caplog.at_level(logging.WARNING, logger="shared.events.ingest"):
        handled = await route(services, json.dumps(invalid).encode(), json.dumps(without_resource).encode(), b"{NaN")
    assert handled == 3  # consumed, not retried: a redelivery would fail the same way
    read = await client.get("/api/v1/events", params={"resource": resource}, headers=issuer.headers("events.read"))
    assert read.json() == []
    reasons = [record.reason for record in caplog.records if record.getMessage() == "event from Event Grid refused"]
    assert sorted(reasons) == sorted(
        [
            "time: must be an RFC 3339 timestamp",
            "resource: is required",
            "the body is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ]
    )
