"""A webhook receiver on loopback for tests: records requests, answers as each path is told to."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


async def serve_locally(handler: Callable[[web.Request], Any], **options: Any) -> tuple[web.AppRunner, int]:
    """An aiohttp server on 127.0.0.1 answering every method and path with ``handler``: its runner and port."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, **options)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Behaviour:
    status: int | Callable[[int], int] = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    options_headers: dict[str, str] | None = None  # None: OPTIONS is not supported (405)
    hold: asyncio.Event | None = None  # answers wait until it is set (an endpoint as slow as the test wants)
    echo: bool = False  # answers with the request's headers as its body (as debugging echo services do)


class Receiver:
    def __init__(self) -> None:
        self.received: dict[str, list[Received]] = defaultdict(list)
        self.behaviours: dict[str, Behaviour] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._counts: dict[str, int] = defaultdict(int)
        self.in_flight: dict[str, int] = defaultdict(int)
        self.max_in_flight: dict[str, int] = defaultdict(int)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def behave(self, path: str, behaviour: Behaviour) -> str:
        self.behaviours["/" + path.lstrip("/")] = behaviour
        return self.url(path)

    def posts(self, path: str) -> list[Received]:
        return [r for r in self.received["/" + path.lstrip("/")] if r.method == "POST"]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        path = request.path
        self.received[path].append(
            Received(request.method, path, {k.lower(): v for k, v in request.headers.items()}, body, time.monotonic())
        )
        behaviour = self.behaviours.get(path, Behaviour())
        if request.method == "OPTIONS":
            if behaviour.options_headers is None:
                return web.Response(status=405)
            return web.Response(status=200, headers=behaviour.options_headers)
        self._counts[path] += 1
        self.in_flight[path] += 1
        self.max_in_flight[path] = max(self.max_in_flight[path], self.in_flight[path])
        try:
            if behaviour.delay:
                await asyncio.sleep(behaviour.delay)
            if behaviour.hold is not None:
                await behaviour.hold.wait()
        finally:
            self.in_flight[path] -= 1
        status = behaviour.status(self._counts[path]) if callable(behaviour.status) else behaviour.status
        text = json.dumps(dict(request.headers.items())) if behaviour.echo else "ok"
        return web.Response(status=status, headers=behaviour.headers, text=text)

    async def start(self) -> None:
        # A handler stops when its client disconnects, so in-flight counts what the client still holds.
        self._runner, self.port = await serve_locally(self._handle, handler_cancellation=True)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
