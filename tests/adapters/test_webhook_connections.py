"""The webhook client never queues a push behind a connection cap: the endpoint guard caps each
endpoint, and its patience must measure the endpoint, not a wait for a pooled connection."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from shared.adapters.webhook_http import AiohttpWebhookClient
from tests.support.receiver import serve_locally

pytestmark = pytest.mark.asyncio


async def test_endpoints_sharing_a_host_each_get_their_own_connections() -> None:
    """Twenty paths of one receiver, 100 pushes at once: all reach the receiver together. With 64
    connections per host, the rest waited for a connection and the guard took them for slow."""
    wanted = 100
    arrived = 0
    all_in = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        nonlocal arrived
        arrived += 1
        if arrived >= wanted:
            all_in.set()
        try:
            await asyncio.wait_for(all_in.wait(), timeout=5)
        except TimeoutError:
            return web.Response(status=503, text=f"only {arrived} requests arrived together")
        return web.Response(status=204)

    runner, port = await serve_locally(hook)
    client = AiohttpWebhookClient(allow_loopback=True)
    try:
        answers = await asyncio.gather(
            *(
                client.post(f"http://127.0.0.1:{port}/hook/{n % 20}", b"{}", {"Content-Type": "application/json"}, 10)
                for n in range(wanted)
            )
        )
    finally:
        await client.close()
        await runner.cleanup()
    assert [answer.status for answer in answers] == [204] * wanted, answers[0].excerpt
