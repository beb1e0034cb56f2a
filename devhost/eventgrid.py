"""The Event Grid webhook the Functions host exposes at ``/runtime/webhooks/eventgrid``.

It answers the subscription validation handshake and invokes the named function once per event,
so local publishers (or tests) can post exactly what Event Grid would deliver. Each event reaches
the function through the azure-functions Event Grid converter, as in Azure (devhost/bindings.py).

Like the Functions host, it serves only callers holding the ``eventgrid_extension`` system key (the
``x-functions-key`` header, else the ``code`` query parameter), on every method, the CloudEvents
OPTIONS handshake included; anything else is a 401, answered before the body is read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from devhost.bindings import event_grid_input
from devhost.functions_index import FunctionIndex, TriggerKind
from devhost.invocation import Invoker, short_error
from devhost.responses import Response, json_response, problem
from devhost.state import EVENTGRID_KEY_NAME, KEY_HEADER, KEY_QUERY_PARAMETER, key_matches

log = logging.getLogger("devhost")

WEBHOOK_PATH = "/runtime/webhooks/eventgrid"
VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"


# The attributes each schema requires: an event with ``specversion`` is a CloudEvent, any other
# object must be an Event Grid-schema event. Event Grid delivers nothing else.
_REQUIRED = {
    "Event Grid": ("id", "subject", "eventType", "eventTime"),
    "CloudEvents": ("specversion", "id", "source", "type"),
}


def _events_of(body: bytes) -> list[Mapping[str, Any]]:
    document = json.loads(body.decode("utf-8")) if body else []
    events = document if isinstance(document, list) else [document]
    if not events or not all(isinstance(event, dict) for event in events):
        raise ValueError("expected a JSON array of event objects")
    return events


def _schema_problem(events: list[Mapping[str, Any]]) -> str | None:
    """Why an event is in neither schema, or None. The function judges the rest (its data, and
    whether the schema is the one it takes), as in Azure, where the host hands it every event."""
    for index, event in enumerate(events):
        schema = "CloudEvents" if "specversion" in event else "Event Grid"
        missing = [name for name in _REQUIRED[schema] if not isinstance(event.get(name), str) or not event[name]]
        if missing:
            return f"event {index} is not a valid {schema} event: {', '.join(missing)} must be non-empty strings"
    return None


class EventGridWebhook:
    """Handles one webhook request; the HTTP layer checks ``authorized`` and routes to it."""

    def __init__(self, index: FunctionIndex, invoker: Invoker, key: str) -> None:
        self._index = index
        self._invoker = invoker
        self._key = key

    def authorized(self, query: Mapping[str, str], headers: Mapping[str, str]) -> bool:
        """The host reads the header first and the query parameter only when the header is absent."""
        presented = headers.get(KEY_HEADER)
        return key_matches(query.get(KEY_QUERY_PARAMETER) if presented is None else presented, self._key)

    async def handle(self, method: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> Response:
        """One request that passed ``authorized`` (the HTTP layer asks before it reads the body)."""
        if method == "OPTIONS":
            return self._cloud_events_handshake(headers)
        if method != "POST":
            return problem(405, "Method not allowed", "the Event Grid webhook accepts POST")
        function_name = query.get("functionName", "")
        spec = self._index.find(function_name, TriggerKind.EVENT_GRID)
        if spec is None:
            return problem(404, "Function not found", f"no Event Grid triggered function named {function_name!r}")
        event_type_header = headers.get("aeg-event-type", "")
        try:
            events = _events_of(body)
        except ValueError as exc:
            return problem(400, "Invalid payload", str(exc))
        if event_type_header == "SubscriptionValidation":
            return self._validate(events)
        if event_type_header != "Notification":
            return problem(400, "Bad request", "header aeg-event-type must be SubscriptionValidation or Notification")
        if (schema_problem := _schema_problem(events)) is not None:
            # 400: Event Grid neither retries it nor needs to; it dead-letters the delivery.
            return problem(400, "Invalid payload", schema_problem)
        for event in events:
            result = await self._invoker.invoke(
                spec, event_grid_input(spec.name, event), log_fields={"event_id": event.get("id", "")}
            )
            if result.error is not None:
                # 500 makes Event Grid retry the delivery, as it would against Azure.
                return problem(500, "Function invocation failed", short_error(result.error))
        return Response(200)

    @staticmethod
    def _validate(events: list[Mapping[str, Any]]) -> Response:
        for event in events:
            if event.get("eventType") == VALIDATION_EVENT:
                data = event.get("data") or {}
                code = data.get("validationCode") if isinstance(data, dict) else None
                if code:
                    return json_response(200, {"validationResponse": code})
        return problem(400, "Bad request", f"no {VALIDATION_EVENT} with a validationCode in the payload")

    @staticmethod
    def _cloud_events_handshake(headers: Mapping[str, str]) -> Response:
        """CloudEvents webhook validation (HTTP OPTIONS abuse protection)."""
        origin = headers.get("webhook-request-origin", "")
        response_headers = [("webhook-allowed-origin", origin or "*"), ("webhook-allowed-rate", "*")]
        return Response(200, b"", response_headers)


def unauthorized() -> Response:
    detail = (
        f"the Event Grid webhook needs the {EVENTGRID_KEY_NAME} system key as the {KEY_HEADER} header "
        f"or the {KEY_QUERY_PARAMETER} query parameter (python -m devhost key {EVENTGRID_KEY_NAME})"
    )
    return problem(401, "Unauthorized", detail)
