"""Herald's OpenAPI document: what each route answers, derived from the routes where it can be.

FastAPI documents the success bodies (each route's ``response_model`` or ``responses``); this module
completes the document from one place:

- every error status a route declares, and those its dependencies make it answer (401 and 403 from
  the scope check, 400 from request validation wherever a route takes input, 500 everywhere), is an
  RFC 9457 ``application/problem+json`` body of the shared ``Problem`` schema, with ``Retry-After``
  on 429 and 503 and ``WWW-Authenticate`` on 401; FastAPI's 422, which Herald never sends, goes;
- each route's security requirement comes from the scope its dependency asks for (``required_scope``,
  the attribute the route-authentication test reads too): a bearer JWT with that scope, HTTP basic
  for the gateway callbacks, none for the public routes;
- the CloudEvents schemas the event routes name.

``python -m shared.api.openapi docs/openapi.json`` (``make openapi``) writes the committed copy.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.routing import BaseRoute

from shared.api.problems import PROBLEM_JSON, PROBLEM_TYPE_BASE
from shared.events.model import MAX_ATTRIBUTE_LENGTH, MAX_EVENT_BYTES, MAX_RESOURCE_LENGTH, SPEC_VERSION
from shared.urns import URN_REGEX

REGENERATE = "make openapi"
DOCUMENT_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"

CLOUD_EVENT = "#/components/schemas/CloudEvent"
CLOUD_EVENT_BATCH = "#/components/schemas/CloudEventBatch"
PROBLEM = "#/components/schemas/Problem"
BEARER = "bearer"
BASIC = "basic"

_DESCRIPTIONS = {
    400: "The request is not valid; `detail` says what to fix and `errors` lists each problem. Nothing changed",
    401: "No valid credentials: send a bearer token from the configured issuer",
    403: "The token lacks the route's scope, or its subject may not do this",
    404: "Not found, or not yours",
    409: "Conflict with what is stored",
    413: "Content too large",
    415: "Unsupported media type",
    429: "Too many requests: retry after the Retry-After seconds; nothing changed",
    500: "Herald could not complete the request; it is safe to retry",
    503: "Herald cannot decide now: retry after the Retry-After seconds; nothing changed",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "The scheme to authenticate with (Bearer, or Basic for the gateway callbacks)",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Seconds to wait before retrying",
            "required": True,
            "schema": {"type": "integer", "minimum": 0},
        }
    },
}
_HEADERS[503] = _HEADERS[429]

NEXT_LINK = {
    "Link": {
        "description": 'The next page: `<url>; rel="next"`. Follow it to read on',
        "schema": {"type": "string"},
    }
}
LOCATION = {"Location": {"description": "The path of the resource", "schema": {"type": "string"}}}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for the error statuses a route answers beyond the derived ones. A route
    words one itself with a plain entry (``{409: {"description": "Processing has started"}}``): every
    error status becomes a problem response either way."""
    return {status: {"description": _description(status)} for status in statuses}


def _description(status: int) -> str:
    return _DESCRIPTIONS.get(status) or HTTPStatus(status).phrase


def _problem_response(status: int, declared: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": declared.get("description") or _description(status),
        "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM}}},
    }
    headers = {**_HEADERS.get(status, {}), **declared.get("headers", {})}
    if headers:
        response["headers"] = headers
    return response


# Binary mode: the event's attributes travel as ce- headers, its data as the body.
_CE_HEADERS = {
    "specversion": f'Binary mode (required): "{SPEC_VERSION}". Its presence selects binary mode',
    "id": "Binary mode (required)",
    "source": "Binary mode (required)",
    "type": "Binary mode (required)",
    "resource": "Binary mode (required): the resource URN",
    "subject": "Binary mode",
    "alternativesubject": "Binary mode",
    "time": "Binary mode: RFC 3339",
    "dataschema": "Binary mode",
}


def publish_headers(codings: str) -> list[dict[str, Any]]:
    """The request headers of publishing: the body's ``Content-Encoding`` (one of ``codings``), and the
    ``ce-*`` attributes of binary mode (other extension attributes travel the same way)."""
    encoding = {
        "name": "Content-Encoding",
        "in": "header",
        "required": False,
        "description": f"The body's coding, if any: one of {codings}",
        "schema": {"type": "string"},
    }
    return [encoding] + [
        {"name": f"ce-{name}", "in": "header", "required": False, "description": text, "schema": {"type": "string"}}
        for name, text in _CE_HEADERS.items()
    ]


def publish_request_body(structured: str, batch: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            structured: {"schema": {"$ref": CLOUD_EVENT}},
            batch: {"schema": {"$ref": CLOUD_EVENT_BATCH}},
            "*/*": {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "Binary mode: the event's data; its Content-Type is the event's datacontenttype",
                }
            },
        },
    }


# ----------------------------------------------------------------------------------- components

_ATTRIBUTE = {"type": "string", "minLength": 1, "maxLength": MAX_ATTRIBUTE_LENGTH}

COMPONENT_SCHEMAS: dict[str, dict[str, Any]] = {
    "CloudEvent": {
        "title": "CloudEvent",
        "type": "object",
        "description": (
            "A CloudEvent in the CloudEvents 1.0 JSON format with Herald's required `resource` extension, at "
            f"most {MAX_EVENT_BYTES} bytes as stored. `data` (any JSON) or `data_base64` (binary data), not "
            "both. Other extension attributes have names of 1-20 lowercase letters or digits and string, "
            "boolean or 32-bit integer values. Events read back carry `time`: the publisher's, else when "
            "Herald received them."
        ),
        "required": ["specversion", "id", "source", "type", "resource"],
        "properties": {
            "specversion": {"type": "string", "const": SPEC_VERSION},
            "id": {**_ATTRIBUTE, "description": "Unique per source; republishing the same (source, id) is a no-op"},
            "source": {**_ATTRIBUTE, "format": "uri-reference"},
            "type": {**_ATTRIBUTE, "description": "Reverse-DNS, such as no.example.case.created"},
            "resource": {
                "type": "string",
                "maxLength": MAX_RESOURCE_LENGTH,
                "pattern": URN_REGEX,
                "description": "The resource the event belongs to (a URN); its policy decides who may read it",
            },
            "subject": {**_ATTRIBUTE, "description": "The party the event concerns: person:<nin> or org:<number>"},
            "alternativesubject": _ATTRIBUTE,
            "time": {"type": "string", "format": "date-time"},
            "datacontenttype": {"type": "string", "description": "The media type of `data`"},
            "dataschema": {"type": "string", "format": "uri"},
            "data": {"description": "The event payload: any JSON value"},
            "data_base64": {"type": "string", "contentEncoding": "base64", "description": "Binary data, base64"},
        },
        # Any other member is an extension attribute (see the description for its values). Not typed here:
        # generators (openapi-typescript) would apply the type to `data` too.
        "additionalProperties": True,
    },
    "CloudEventBatch": {
        "title": "CloudEventBatch",
        "type": "array",
        "description": "CloudEvents in the JSON batch format",
        "items": {"$ref": CLOUD_EVENT},
    },
    "ProblemItem": {
        "title": "ProblemItem",
        "type": "object",
        "description": "One problem of a request: an event's attribute, or a request field",
        "properties": {
            "index": {"type": "integer", "description": "The event's position in the request"},
            "id": {"type": ["string", "null"], "description": "The event's id, when it had one"},
            "attribute": {"type": "string"},
            "location": {"type": "string", "description": "The field, such as body.recipients.0"},
            "detail": {"type": "string"},
            "size": {"type": "integer", "description": "The event's size in bytes"},
        },
    },
    "Problem": {
        "title": "Problem",
        "type": "object",
        "description": (
            f"RFC 9457 problem details. `type` is `{PROBLEM_TYPE_BASE}<kind>` (or `about:blank`); the other "
            "members extend it for some kinds."
        ),
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "description": f"{PROBLEM_TYPE_BASE}<kind>, such as invalid-events"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string", "description": "What went wrong and what to do about it"},
            "instance": {"type": "string", "description": "The request's path"},
            "errors": {"type": "array", "items": {"$ref": "#/components/schemas/ProblemItem"}},
            "resources": {"type": "array", "items": {"type": "string"}, "description": "Resources refused"},
            "resource": {"type": "string", "description": "The resource refused"},
            "conflicts": {
                "type": "array",
                "description": "Events whose (source, id) was published before with other content",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": "integer"},
                        "id": {"type": "string"},
                        "source": {"type": "string"},
                    },
                },
            },
            "accepted": {"type": "array", "items": {"type": "string"}, "description": "Ids accepted all the same"},
            "maxEvents": {"type": "integer", "description": "The most events one request may hold"},
            "senders": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"location": {"type": "string"}, "value": {"type": "string"}},
                },
            },
            "window": {"type": "string", "description": "The limit's window: minute or day"},
            "limit": {"type": "integer"},
            "notifications": {"type": "integer"},
            "outcomes": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
                "description": "What became of the reports that were matched",
            },
        },
    },
}

SECURITY_SCHEMES = {
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": (
            "A JWT from the configured issuer (Entra ID; devhost locally). Its scopes (`scp`, or application "
            "`roles`) must include the one each operation names."
        ),
    },
    BASIC: {"type": "http", "scheme": "basic", "description": "The SMS gateway's delivery-report credentials"},
}


# ----------------------------------------------------------------------------------- completion


def api_routes(routes: Sequence[BaseRoute]) -> list[RouteContext]:
    """Every API route of an app, those of included routers too (FastAPI keeps them behind the router)."""
    return [context for context in iter_route_contexts(routes) if isinstance(context.original_route, APIRoute)]


def route_scopes(route: RouteContext) -> list[str] | None:
    """The scopes a route accepts (any one of them), from its dependencies; None when it asks for none."""
    for dependency in route.dependant.dependencies:
        scope = getattr(dependency.call, "required_scope", None)
        if scope:
            return str(scope).split("|")
    return None


def _basic_auth(route: RouteContext) -> bool:
    return any(getattr(dependency.call, "basic_auth", False) for dependency in route.dependant.dependencies)


def _takes_input(route: RouteContext) -> bool:
    """Whether request validation can refuse the route's input (a 400 problem, never a 422)."""
    dependant = route.dependant
    if dependant.query_params or dependant.header_params or dependant.body_params:
        return True
    # A path parameter is always there; only a constrained one (a pattern, a length) can be refused.
    return any(parameter.field_info.metadata for parameter in dependant.path_params)


def _security(route: RouteContext) -> list[dict[str, list[str]]]:
    scopes = route_scopes(route)
    if scopes is not None:
        return [{BEARER: [scope]} for scope in scopes]
    if _basic_auth(route):
        return [{BASIC: []}]
    return []


def _derived_statuses(route: RouteContext) -> dict[int, str | None]:
    statuses: dict[int, str | None] = {500: None}
    if route_scopes(route) is not None:
        statuses.update({401: None, 403: None})
    elif _basic_auth(route):
        statuses[401] = "No valid basic credentials: send the gateway's"
    if _takes_input(route):
        statuses[400] = None
    return statuses


def complete(document: dict[str, Any], routes: Sequence[BaseRoute]) -> None:
    """Completes FastAPI's document in place (see the module's docstring)."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas.update(COMPONENT_SCHEMAS)
    components["schemas"] = dict(sorted(schemas.items()))
    components["securitySchemes"] = SECURITY_SCHEMES
    for route in api_routes(routes):
        if not route.include_in_schema:
            continue
        for method in sorted(route.methods or ()):
            operation = document["paths"][route.path_format][method.lower()]
            operation["security"] = _security(route)
            responses: dict[str, Any] = operation["responses"]
            responses.pop("422", None)
            for status, description in _derived_statuses(route).items():
                responses.setdefault(str(status), {"description": description or _description(status)})
            for key, response in list(responses.items()):
                if key.isdigit() and int(key) >= 400:
                    responses[key] = _problem_response(int(key), response)
            operation["responses"] = dict(sorted(responses.items()))


class HeraldAPI(FastAPI):
    """FastAPI whose OpenAPI document is completed by :func:`complete`."""

    def openapi(self) -> dict[str, Any]:
        cached = self.openapi_schema
        document = super().openapi()
        if document is not cached:
            complete(document, self.routes)
        return document


def operation_id(route: APIRoute) -> str:
    """The route function's name (``publish_events``): what generated clients call the operation."""
    return route.name


def render(document: dict[str, Any]) -> str:
    """The committed form: indented, in the document's own (deterministic) order."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def served_document() -> dict[str, Any]:
    from shared.api.app import create_api

    async def no_services() -> Any:
        raise RuntimeError("the OpenAPI document needs no services")

    return create_api(no_services).openapi()


def main(argv: Sequence[str]) -> int:
    target = Path(argv[0]) if argv else DOCUMENT_PATH
    target.write_text(render(served_document()), encoding="utf-8")
    sys.stderr.write(f"wrote {target}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
