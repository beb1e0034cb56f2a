"""Destinations on Azure Event Grid: a consumer's custom topic, published to as CloudEvents with the
SDK's ``EventGridPublisherClient`` and Herald's identity (the managed identity in Azure, which the
consumer grants EventGrid Data Sender on the topic; devhost's issuer locally, against local fakes).

The event goes as it is stored, with its id, attributes and data. One thing the SDK would change:
it writes ``time`` from a datetime, to milliseconds; Herald's times carry microseconds, and a
consumer relaying the event back to Herald must send the very instant it got. So the event's own
``time`` string is handed over as it is (as an attribute the SDK passes through).

Added: the push's Standard Webhooks signature, as the extension attributes ``webhookid``,
``webhooktimestamp`` and ``webhooksignature``. Event Grid serializes the event again for its receivers,
so the signature covers the event's canonical form without those three
(shared/subscriptions/signed_event.py), which a receiver rebuilds from what it got.

Outcomes are answered as a webhook's: 200 when the topic took the event, Event Grid's own status
otherwise (429 and 503 with their Retry-After, 401/403 when Herald's identity is refused, 404 when
there is no such topic), None when nothing answered. The SDK does not retry: Herald's schedule does.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import aiohttp
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError, HttpResponseError
from azure.core.messaging import CloudEvent
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.core.pipeline.transport import AioHttpTransport
from azure.core.rest import AsyncHttpResponse, HttpRequest
from azure.core.serialization import NULL
from azure.eventgrid.aio import EventGridPublisherClient

from shared.subscriptions.ports import WebhookResponse
from shared.subscriptions.signed_event import SIGNATURE_EXTENSIONS
from shared.subscriptions.targets import Destination

EXCERPT_CHARACTERS = 2048
# CloudEvent attributes the SDK's CloudEvent takes as arguments; every other one is an extension.
_CORE = frozenset({"specversion", "id", "source", "type", "subject", "datacontenttype", "dataschema", "time"})
_DATA = frozenset({"data", "data_base64"})
_WHY = {
    401: "Event Grid did not accept Herald's token (401)",
    403: "Herald's identity may not publish to this topic (403): the topic's owner grants it EventGrid Data Sender",
    404: "there is no such Event Grid topic (404)",
    413: "the event is larger than Event Grid takes (413)",
}


class EventGridTopics:
    """Publishes to any number of custom topics: one SDK client per topic endpoint (the most recently
    used ``max_clients`` are kept), all on one pooled HTTP session."""

    def __init__(
        self,
        credential: AsyncTokenCredential,
        *,
        timeout_seconds: float = 30.0,
        http_allowed: bool = False,
        max_clients: int = 256,
    ) -> None:
        self._credential = credential
        self._timeout = timeout_seconds
        # Locally, fakes of the publish API listen on plain http loopback (the destination check allows
        # nothing else); bearer tokens go there only then.
        self._http_allowed = http_allowed
        self._max_clients = max_clients
        self._clients: OrderedDict[str, EventGridPublisherClient] = OrderedDict()
        self._session: aiohttp.ClientSession | None = None

    def _client(self, endpoint: str) -> EventGridPublisherClient:
        client = self._clients.get(endpoint)
        if client is not None:
            self._clients.move_to_end(endpoint)
            return client
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256, limit_per_host=64))
        local = self._http_allowed and endpoint.startswith("http://")
        client = EventGridPublisherClient(
            endpoint,
            self._credential,
            transport=AioHttpTransport(
                session=self._session,
                session_owner=False,
                connection_timeout=self._timeout,
                read_timeout=self._timeout,
            ),
            retry_total=0,  # Herald's retry schedule, not the SDK's, decides when to try again
            per_call_policies=[_PlainHttpLoopback()] if local else [],
        )
        self._clients[endpoint] = client
        while len(self._clients) > self._max_clients:
            _, evicted = self._clients.popitem(last=False)
            asyncio.get_running_loop().create_task(evicted.close())
        return client

    async def publish(
        self, destination: Destination, message_id: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> WebhookResponse:
        assert destination.topic_endpoint is not None
        endpoint = destination.topic_endpoint
        started = time.perf_counter()

        def answered(status: int | None, **rest: Any) -> WebhookResponse:
            elapsed = int((time.perf_counter() - started) * 1000)
            return WebhookResponse(status=status, headers=rest.pop("headers", {}), latency_ms=elapsed, **rest)

        try:
            event = cloud_event(body, headers)
        except (ValueError, KeyError, TypeError) as error:
            return answered(None, excerpt="", error=f"the event cannot be published to Event Grid: {error}"[:300])
        try:
            await asyncio.wait_for(self._client(endpoint).send([event]), timeout)
        except HttpResponseError as error:
            status = error.status_code
            response = error.response
            excerpt = ""
            if response is not None:
                try:
                    excerpt = response.text()[:EXCERPT_CHARACTERS]
                except (UnicodeDecodeError, AzureError):
                    excerpt = ""
            reason = _WHY.get(status or 0) or (
                f"Event Grid answered {status}" if status else f"no token for Event Grid: {error.message}"[:300]
            )
            return answered(
                status,
                headers=dict(getattr(response, "headers", None) or {}),
                excerpt=excerpt,
                error=reason,
            )
        except TimeoutError:
            return answered(None, excerpt="", error=f"no answer within {timeout:g} s")
        except AzureError as error:  # no connection, a broken answer: nothing was judged
            return answered(None, excerpt="", error=f"{type(error).__name__}: {error.message}"[:300])
        return answered(200, excerpt="")

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), OrderedDict()
        for client in clients:
            await client.close()
        if self._session is not None:
            await self._session.close()


class _PlainHttpLoopback(SansIOHTTPPolicy[HttpRequest, AsyncHttpResponse]):
    """Lets the bearer token go over plain http, for a local fake on loopback only (the destination check
    admits no other plain http URL): azure-core's ``enforce_https`` per-operation option, set here
    because the SDK would also hand that option to each event it builds."""

    def on_request(self, request: PipelineRequest[HttpRequest]) -> None:
        request.context.options["enforce_https"] = False


def cloud_event(body: bytes, headers: Mapping[str, str] | None = None) -> CloudEvent[Any]:
    """The stored event (structured-mode JSON) as the SDK's CloudEvent, every attribute as it is, and the
    push's signature ``headers`` as the extension attributes ``webhookid``, ``webhooktimestamp`` and
    ``webhooksignature`` (which replace an event's own attributes of those names)."""
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError("the event is not a JSON object")
    data: Any
    if "data_base64" in document:
        data = base64.b64decode(document["data_base64"])  # the SDK writes bytes back as data_base64
    elif "data" in document:
        data = NULL if document["data"] is None else document["data"]
    else:
        data = None
    extensions = {name: value for name, value in document.items() if name not in _CORE | _DATA}
    if "time" in document:
        extensions["time"] = document["time"]  # the string as stored: see the module's docstring
    for header, extension in SIGNATURE_EXTENSIONS.items():
        if headers is not None and header in headers:
            extensions[extension] = headers[header]
    return CloudEvent(
        source=document["source"],
        type=document["type"],
        specversion=document.get("specversion", "1.0"),
        id=document["id"],
        time=None,
        subject=document.get("subject"),
        datacontenttype=document.get("datacontenttype"),
        dataschema=document.get("dataschema"),
        data=data,
        extensions=extensions or None,
    )
