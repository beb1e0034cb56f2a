"""devhost's Event Grid webhook, as Event Grid's delivery to the delivery-report functions meets
it: a payload that is not Event Grid or CloudEvents events is a 400 problem (Event Grid does not
retry a 400: it dead-letters the delivery), never a 500 it would retry for a day. An event in the
other schema, or whose data is not an object, reaches the function, as the Functions host hands it
every event, and the function refuses it: logged, counted, parked, and acknowledged."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient

from shared.adapters.table_dead_reports import REPORTS_TABLE
from tests.support.devhost_process import devhost_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def key(devhost) -> str:
    return devhost_cli(devhost.env, "key", "eventgrid_extension")


def report(**changes: Any) -> dict[str, Any]:
    """An ACS email delivery report in the Event Grid schema, as the system topic delivers it."""
    document = {
        "id": str(uuid.uuid4()),
        "topic": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Communication/CommunicationServices/acs",
        "subject": "sender/noreply@herald.local/message/m-1",
        "eventType": "Microsoft.Communication.EmailDeliveryReportReceived",
        "eventTime": "2026-05-01T12:00:00Z",
        "data": {"messageId": f"unknown-{uuid.uuid4().hex[:8]}", "status": "Delivered"},
        "dataVersion": "1.0",
    }
    return document | changes


def cloud_event() -> dict[str, Any]:
    """The same report in the CloudEvents schema, which the subscription does not deliver."""
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Communication/CommunicationServices/acs",
        "type": "Microsoft.Communication.EmailDeliveryReportReceived",
        "time": "2026-05-01T12:00:00Z",
        "data": {"messageId": "m-1", "status": "Delivered"},
    }


def post(devhost, key: str, body: bytes) -> httpx.Response:
    return httpx.post(
        f"{devhost.url}/runtime/webhooks/eventgrid",
        params={"functionName": "email_delivery_report"},
        headers={"aeg-event-type": "Notification", "x-functions-key": key, "Content-Type": "application/json"},
        content=body,
        timeout=10,
    )


def parked(settings, event_id: str) -> dict[str, Any] | None:
    """The report devhost's Herald parked for the event, read from the shared Azurite."""
    with TableServiceClient.from_connection_string(settings.storage_connection_string) as service:
        table = service.get_table_client(REPORTS_TABLE)
        try:
            return dict(table.get_entity("email", f"event:{event_id}"))
        except ResourceNotFoundError:
            return None


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(json.dumps([{"id": "x", "data": {}}]).encode(), id="an event without eventType"),
        pytest.param(json.dumps([report(subject=7)]).encode(), id="a subject that is no string"),
        pytest.param(
            json.dumps([{"specversion": "1.0", "id": "x", "data": {}}]).encode(), id="a CloudEvent without type"
        ),
        pytest.param(json.dumps([report(), 7]).encode(), id="an array with a number"),
        pytest.param(b"42", id="a number"),
        pytest.param(b'"report"', id="a string"),
        pytest.param(b"null", id="null"),
        pytest.param(b"[]", id="an empty array"),
        pytest.param(b"<report/>", id="not JSON"),
        pytest.param(b"\xff\xfe[]", id="not UTF-8"),
    ],
)
def test_a_payload_that_is_not_events_is_a_400_problem(devhost, key, body):
    response = post(devhost, key, body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"]


@pytest.mark.parametrize("alone", [True, False], ids=["alone", "in an array"])
def test_a_cloud_event_where_the_event_grid_schema_is_expected_is_refused_and_parked(devhost, key, settings, alone):
    """Not applied as a report (its data names a message id), not retried, and recorded."""
    sent = cloud_event()
    response = post(devhost, key, json.dumps(sent if alone else [sent]).encode())
    assert response.status_code == 200, response.text
    record = parked(settings, sent["id"])
    assert record is not None and record["reason"] == "CLOUDEVENTS_SCHEMA", record


@pytest.mark.parametrize(
    "data", [["messageId", "m-1"], "m-1", 42, True], ids=["a list", "a string", "a number", "a bool"]
)
def test_an_event_whose_data_is_no_object_is_refused_and_parked(devhost, key, settings, data):
    sent = report(data=data)
    response = post(devhost, key, json.dumps([sent]).encode())
    assert response.status_code == 200, response.text
    record = parked(settings, sent["id"])
    assert record is not None and record["reason"] == "DATA_NOT_AN_OBJECT", record
    assert json.loads(record["payload"])["data"] == data
