"""The OpenAPI document Herald serves: valid, committed as docs/openapi.json, and saying what Herald answers.

Whether the answers really match it is the schemathesis suite's part (tests/security/test_schemathesis.py);
whether clients generated from it work, tests/contract/test_generated_clients.py's."""

from __future__ import annotations

import difflib
import json
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from shared.api.app import BASIC_AUTH_PATHS, CONSOLE_PATHS, PUBLIC_PATHS, create_api
from shared.api.openapi import DOCUMENT_PATH, REGENERATE, api_routes, render
from shared.api.problems import PROBLEM_JSON

PROBLEM = {"$ref": "#/components/schemas/Problem"}


async def no_services() -> Any:
    raise AssertionError("serving the document needs no services")


@pytest.fixture(scope="module")
def app() -> Any:
    return create_api(no_services)


@pytest.fixture
async def document(app: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://herald.test") as http:
        response = await http.get("/api/v1/openapi.json")
    assert response.status_code == 200
    served: dict[str, Any] = response.json()
    return served


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, item in document["paths"].items() for method, op in item.items()]


def test_committed_document_is_the_served_one(document):
    committed = DOCUMENT_PATH.read_text(encoding="utf-8") if DOCUMENT_PATH.exists() else ""
    served = render(document)
    if committed != served:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True), served.splitlines(keepends=True), "docs/openapi.json", "served"
            )
        )
        pytest.fail(f"docs/openapi.json is not the document Herald serves: run `{REGENERATE}`\n{diff[:4000]}")


def test_document_is_valid_openapi(document):
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_no_route_documents_a_422_herald_never_sends(document):
    assert "HTTPValidationError" not in json.dumps(document)
    assert not [(m, p) for m, p, op in operations(document) if "422" in op["responses"]]


def test_every_error_is_a_problem_document(document):
    for method, path, op in operations(document):
        for status, response in op["responses"].items():
            if int(status) >= 400:
                assert response["content"] == {PROBLEM_JSON: {"schema": PROBLEM}}, (method, path, status)
                assert response["description"], (method, path, status)
    problem = document["components"]["schemas"]["Problem"]
    assert problem["required"] == ["type", "title", "status", "detail"]
    assert {"errors", "instance", "conflicts", "resources", "maxEvents"} <= set(problem["properties"])


def refusable(parameter: dict[str, Any]) -> bool:
    """A parameter request validation can refuse: any but an unconstrained path parameter."""
    constraints = {"pattern", "minLength", "maxLength", "minimum", "maximum"}
    return parameter["in"] != "path" or bool(constraints & set(parameter["schema"]))


def test_every_route_documents_its_auth_and_validation_problems(document):
    for method, path, op in operations(document):
        statuses = set(op["responses"])
        assert "500" in statuses, (method, path)
        if path in PUBLIC_PATHS:
            assert not statuses & {"401", "403"}, (method, path)
        elif path in BASIC_AUTH_PATHS:
            assert "401" in statuses, (method, path)
        else:
            assert {"401", "403"} <= statuses, (method, path)
        if op.get("requestBody") or any(refusable(parameter) for parameter in op.get("parameters", [])):
            assert "400" in statuses, (method, path)
    publish = document["paths"]["/api/v1/events"]["post"]["responses"]
    assert {"400", "401", "403", "409", "413", "415", "429", "503"} <= set(publish)
    assert publish["429"]["headers"]["Retry-After"]["required"] is True
    assert publish["401"]["headers"]["WWW-Authenticate"]["required"] is True


def test_every_success_body_has_a_schema(document):
    untyped = [
        (method, path, status)
        for method, path, op in operations(document)
        for status, response in op["responses"].items()
        if status.startswith("2")
        and status != "204"
        and not all(media.get("schema") for media in response.get("content", {"": {}}).values())
    ]
    assert untyped == []
    assert not [
        (m, p) for m, p, op in operations(document) if "204" in op["responses"] and "content" in op["responses"]["204"]
    ]


def test_security_is_the_scope_each_route_asks_for(app, document):
    """From the routes' own dependencies (what tests/identity/test_authentication.py checks), not a list."""
    expected: dict[tuple[str, str], list[dict[str, list[str]]]] = {}
    for route in api_routes(app.routes):
        if route.path in CONSOLE_PATHS:  # the console's static files: no API operations
            continue
        scope = next(
            (
                getattr(d.call, "required_scope", None)
                for d in route.dependant.dependencies
                if hasattr(d.call, "required_scope")
            ),
            None,
        )
        for method in route.methods:
            if scope:
                expected[(method, route.path_format)] = [{"bearer": [s]} for s in scope.split("|")]
            elif route.path in BASIC_AUTH_PATHS:
                expected[(method, route.path_format)] = [{"basic": []}]
            else:
                expected[(method, route.path_format)] = []
    assert len(expected) > 30
    assert {(m, p): op["security"] for m, p, op in operations(document)} == expected
    assert not [path for path in document["paths"] if not path.startswith("/api/v1/")]
    assert expected[("POST", "/api/v1/events")] == [{"bearer": ["events.publish"]}]
    assert expected[("GET", "/api/v1/health")] == []
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == schemes["bearer"] | {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


def test_cloud_events_are_described_in_every_mode(document):
    schemas = document["components"]["schemas"]
    event = schemas["CloudEvent"]
    assert event["required"] == ["specversion", "id", "source", "type", "resource"]
    assert {"subject", "time", "datacontenttype", "dataschema", "data", "data_base64"} <= set(event["properties"])
    assert schemas["CloudEventBatch"] == schemas["CloudEventBatch"] | {
        "type": "array",
        "items": {"$ref": "#/components/schemas/CloudEvent"},
    }
    publish = document["paths"]["/api/v1/events"]["post"]
    content = publish["requestBody"]["content"]
    assert content["application/cloudevents+json"]["schema"] == {"$ref": "#/components/schemas/CloudEvent"}
    assert content["application/cloudevents-batch+json"]["schema"] == {"$ref": "#/components/schemas/CloudEventBatch"}
    assert "*/*" in content, "binary mode: the data in any media type"
    headers = {p["name"] for p in publish["parameters"] if p["in"] == "header"}
    assert {"ce-specversion", "ce-id", "ce-source", "ce-type", "ce-resource", "ce-subject", "ce-time"} <= headers
    assert publish["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PublishAccepted"
    }
    read = document["paths"]["/api/v1/events"]["get"]["responses"]["200"]
    assert read["content"]["application/cloudevents-batch+json"]["schema"] == {
        "$ref": "#/components/schemas/CloudEventBatch"
    }
    assert read["headers"]["Link"]["required"] is True


def test_paged_lists_document_their_link_header(document):
    for path in ("/api/v1/subscriptions", "/api/v1/subscriptions/{subscription_id}/deliveries"):
        assert "Link" in document["paths"][path]["get"]["responses"]["200"]["headers"], path


def test_operation_ids_are_the_route_names(document):
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids))
    assert {"publish_events", "read_events", "create_subscription", "deliveries"} <= set(ids)
