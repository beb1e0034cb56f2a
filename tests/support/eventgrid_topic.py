"""A local fake of an Azure Event Grid custom topic's publish API, on loopback, for tests.

It checks what Event Grid checks of a publisher using Microsoft Entra ID: ``POST /api/events`` with an
``api-version``, the CloudEvents batch content type, and a bearer token signed by the expected issuer
for Event Grid's audience (``https://eventgrid.azure.net``). A request that fails a check gets the
status Event Grid would answer (401, 404, 400) and is not recorded; one that passes gets the status
the test asks for (200 by default) and its events are kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web

from tests.support.receiver import serve_locally

EVENT_GRID_AUDIENCE = "https://eventgrid.azure.net"
BATCH = "application/cloudevents-batch+json; charset=utf-8"


@dataclass
class Publish:
    query: dict[str, str]
    headers: dict[str, str]
    claims: dict[str, Any]
    events: list[dict[str, Any]]


@dataclass
class EventGridTopicFake:
    key: Any  # the issuer's public key the token must verify with
    issuer: str
    status: int | Callable[[int], int] = 200  # what an accepted publish is answered, by its number (1-based)
    published: list[Publish] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # why each refused request was refused
    port: int = 0
    _runner: web.AppRunner | None = None
    _accepted: int = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/events"

    def events(self) -> list[dict[str, Any]]:
        """Every event of every accepted publish (answered 2xx), in order."""
        return [event for publish in self.published for event in publish.events]

    def _refuse(self, status: int, why: str) -> web.Response:
        self.refused.append(why)
        return web.json_response({"error": {"code": "Refused", "message": why}}, status=status)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST" or request.path != "/api/events":
            return self._refuse(404, f"no {request.method} {request.path}")
        if not request.query.get("api-version"):
            return self._refuse(400, "api-version is missing")
        if request.headers.get("Content-Type") != BATCH:
            return self._refuse(400, f"content type {request.headers.get('Content-Type')!r}")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not token:
            return self._refuse(401, "no bearer token")
        try:
            claims = jwt.decode(token, self.key, algorithms=["RS256"], audience=EVENT_GRID_AUDIENCE, issuer=self.issuer)
        except jwt.PyJWTError as error:
            return self._refuse(401, f"token: {error}")
        events = json.loads(await request.read())
        if not isinstance(events, list) or not all(isinstance(e, dict) and e.get("specversion") for e in events):
            return self._refuse(400, "not a batch of CloudEvents")
        self._accepted += 1
        status = self.status(self._accepted) if callable(self.status) else self.status
        if 200 <= status < 300:
            self.published.append(Publish(dict(request.query), dict(request.headers), claims, events))
            return web.Response(status=status)
        return web.json_response({"error": {"code": "Failed", "message": f"answered {status}"}}, status=status)

    async def start(self) -> None:
        self._runner, self.port = await serve_locally(self._handle)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
