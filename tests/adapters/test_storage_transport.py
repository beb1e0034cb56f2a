"""Herald's storage clients' HTTP transport against a server that closes idle connections.

Node's HTTP server, and so Azurite, closes a keep-alive connection idle for 5 s; aiohttp's pool kept
one for 15 s, so a request could be written to a socket the server was closing at that moment
(connection reset by peer), and each retry could draw another such socket from the pool."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from azure.core.pipeline import AsyncPipeline
from azure.core.rest import HttpRequest

from shared.adapters import tables
from shared.adapters.tables import STORAGE_IDLE_SECONDS, StorageTransport, storage_client_options
from tests.support.receiver import serve_locally

AZURITE = Path(__file__).resolve().parents[2] / "node_modules" / "azurite" / "dist" / "src"


@pytest_asyncio.fixture
async def server() -> AsyncIterator[tuple[str, list[int]]]:
    """A loopback server answering every request with the client port it came from."""
    ports: list[int] = []

    async def answer(request: web.Request) -> web.Response:
        assert request.transport is not None
        ports.append(request.transport.get_extra_info("peername")[1])
        return web.Response(text="ok")

    runner, port = await serve_locally(answer, keepalive_timeout=60)
    try:
        yield f"http://127.0.0.1:{port}/", ports
    finally:
        await runner.cleanup()


@pytest.mark.asyncio
async def test_a_connection_idle_past_the_limit_is_not_reused(server, monkeypatch) -> None:
    url, ports = server
    monkeypatch.setattr(tables, "STORAGE_IDLE_SECONDS", 0.3)
    async with AsyncPipeline(transport=StorageTransport()) as pipeline:
        for pause in (0.0, 0.05, 0.8):
            await asyncio.sleep(pause)
            response = await pipeline.run(HttpRequest("GET", url))
            assert response.http_response.status_code == 200
    first, soon_after, after_idle = ports
    assert soon_after == first, "a connection used moments ago is reused"
    assert after_idle != first, "a connection idle past the limit was reused"


@pytest.mark.parametrize("service", ["table", "queue"])
def test_the_idle_limit_is_below_azurites_keep_alive(service: str) -> None:
    constants = (AZURITE / service / "utils" / "constants.js").read_text()
    found = re.search(rf"DEFAULT_{service.upper()}_KEEP_ALIVE_TIMEOUT = (\d+);", constants)
    assert found is not None
    assert int(found.group(1)) > STORAGE_IDLE_SECONDS


def test_each_client_gets_a_transport_of_its_own() -> None:
    # A client closes its transport when it closes: two clients sharing one would break each other.
    first, second = storage_client_options(), storage_client_options()
    assert first["transport"] is not second["transport"]
    assert first["use_env_settings"] is False
