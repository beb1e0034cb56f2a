"""schemathesis against Herald's own OpenAPI document, in-process through the ASGI interface.

schemathesis generates the requests (valid and invalid against the schema, every operation); each is
sent with a valid bearer token that holds every scope. Required: no 5xx, every 4xx is an RFC 9457
problem document (``application/problem+json`` with type, title, status and detail), and every answer
is one the document describes: its status, media type, headers and body schema."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shared.api.auth import SCOPES
from tests.reliability.figures import record_figures

PER_OPERATION = 48
MINIMUM = 1_000
# What the answer must agree with in the document; checks of Herald's own behaviour are the assertions below.
CONFORMANCE = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def generate(schema: dict[str, Any]) -> list[Any]:
    loaded = schemathesis.openapi.from_dict(schema)
    cases: list[Any] = []
    for result in loaded.get_all_operations():
        operation = result.ok()
        found: list[Any] = []

        @settings(
            max_examples=PER_OPERATION,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(operation.as_strategy())
        def collect(case: Any) -> None:
            found.append(case)  # noqa: B023  (collect() runs before the loop moves on)

        collect()
        cases.extend(found)
    return cases


def problem_errors(response: httpx.Response) -> str | None:
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return f"content-type {response.headers.get('content-type')!r}"
    try:
        document = response.json()
    except ValueError:
        return "body is not JSON"
    missing = [k for k in ("type", "title", "status", "detail") if k not in document]
    if missing:
        return f"problem document lacks {missing}"
    if document["status"] != response.status_code:
        return f"status {document['status']} in a {response.status_code} response"
    return None


def undocumented(case: Any, response: httpx.Response) -> str | None:
    """How the answer departs from the document (status, media type, headers, body), if it does."""
    try:
        case.validate_response(response, checks=CONFORMANCE)
    except FailureGroup as group:
        return "; ".join(f"{failure.title}: {' '.join(failure.message.split())}"[:300] for failure in group.exceptions)
    return None


async def test_generated_requests_never_5xx_and_every_4xx_is_a_problem(client, issuer):
    schema = (await client.get("/api/v1/openapi.json")).json()
    cases = generate(schema)
    token = issuer.token("org:991825827", tuple(SCOPES))
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    for case in cases:
        kwargs = case.as_transport_kwargs(base_url="http://herald.test")
        headers = {k: v for k, v in (kwargs.get("headers") or {}).items() if not k.lower().startswith("x-schemathesis")}
        headers["Authorization"] = f"Bearer {token}"
        content: Any = None
        if "json" in kwargs:
            content = json.dumps(kwargs["json"]).encode()
            headers.setdefault("Content-Type", "application/json")
        elif kwargs.get("data") is not None:
            content = kwargs["data"] if isinstance(kwargs["data"], bytes | str) else json.dumps(kwargs["data"])
        try:
            response = await client.request(
                kwargs["method"], kwargs["url"], params=kwargs.get("params"), headers=headers, content=content
            )
        except Exception as error:  # the app raised through the ASGI interface: a 500 in production
            failures.append(f"{case.method} {case.path}: raised {type(error).__name__}: {error}")
            statuses[500] += 1
            continue
        statuses[response.status_code] += 1
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.path} -> {response.status_code}: {response.text[:300]}")
        elif response.status_code >= 400 and (why := problem_errors(response)):
            failures.append(f"{case.method} {case.path} -> {response.status_code}: {why}: {response.text[:200]}")
        elif why := undocumented(case, response):
            failures.append(
                f"{case.method} {case.path} -> {response.status_code}: not as documented: {why} [{kwargs['url']}: {response.text[:120]}]"
            )
    record_figures(
        "schemathesis",
        {
            "operations": len({(c.method, c.path) for c in cases}),
            "requests": len(cases),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "failures": len(failures),
            "first_failures": failures[:10],
        },
    )
    assert len(cases) >= MINIMUM
    assert not failures, "\n".join(failures[:20])
