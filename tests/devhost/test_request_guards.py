"""What devhost refuses before a function runs, as the Functions host does: Event Grid webhook calls
without the ``eventgrid_extension`` system key (401), and request bodies over the host's limit (413),
refused before they are read, so a hostile client can neither forge events nor fill devhost's memory."""

from __future__ import annotations

import asyncio
import itertools
import os
import select
import socket
import stat
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from devhost import DevHost, DevHostOptions
from devhost.azurite import Azurite
from tests.devhost.sample_app import Recorder, build_app

REPO_ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
WEBHOOK = "/runtime/webhooks/eventgrid?functionName=on_event"


class Hosts:
    """Starts DevHosts on the sample app (unique queue names per test) and stops them at the end."""

    def __init__(self, azurite: Azurite) -> None:
        self.azurite = azurite
        self.recorder = Recorder()
        self.started: list[DevHost] = []

    async def start(self, **options: Any) -> DevHost:
        app = build_app(f"guard-{uuid.uuid4().hex[:10]}", self.recorder)
        defaults: dict[str, Any] = {
            "port": 0,
            "storage_connection_string": self.azurite.connection_string,
            "route_prefix": "",
            "provision_app": False,
        }
        host = DevHost(app, DevHostOptions(**(defaults | options)))
        await host.start()
        self.started.append(host)
        return host


@pytest_asyncio.fixture
async def hosts(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Hosts]:
    monkeypatch.setenv("DEVHOST_TEST_FLAKY_QUEUE", f"guard-flaky-{uuid.uuid4().hex[:8]}")
    running = Hosts(azurite)
    yield running
    for host in running.started:
        await host.stop()


def event() -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "topic": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Communication/CommunicationServices/acs",
        "subject": "sender/noreply@herald.local/message/m-1",
        "eventType": "Microsoft.Communication.EmailDeliveryReportReceived",
        "eventTime": "2026-05-01T12:00:00Z",
        "data": {"messageId": "m-1", "status": "Bounced"},
        "dataVersion": "1.0",
    }


# --------------------------------------------------------------------------- the webhook's system key


async def test_the_event_grid_webhook_refuses_every_call_without_its_system_key(hosts: Hosts) -> None:
    host = await hosts.start(eventgrid_key="the-right-key-0123456789")
    key = host.eventgrid_key
    assert key == "the-right-key-0123456789"
    notification = {"aeg-event-type": "Notification"}
    validation = {"aeg-event-type": "SubscriptionValidation"}
    handshake_event = event() | {
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "data": {"validationCode": "c-1"},
    }
    forged: dict[str, tuple[str, str, dict[str, str]]] = {
        "no key": ("POST", WEBHOOK, notification),
        "empty header": ("POST", WEBHOOK, notification | {"x-functions-key": ""}),
        "wrong header": ("POST", WEBHOOK, notification | {"x-functions-key": "guess"}),
        "prefix of the key": ("POST", WEBHOOK, notification | {"x-functions-key": key[:-1]}),
        "key in other case": ("POST", WEBHOOK, notification | {"x-functions-key": key.upper()}),
        "wrong code": ("POST", f"{WEBHOOK}&code=guess", notification),
        # The host reads the header first: a wrong header is not rescued by a right code.
        "wrong header, right code": ("POST", f"{WEBHOOK}&code={key}", notification | {"x-functions-key": "x"}),
        "validation handshake": ("POST", WEBHOOK, validation),
        "CloudEvents OPTIONS handshake": ("OPTIONS", WEBHOOK, {"webhook-request-origin": "evil.example"}),
        "GET": ("GET", WEBHOOK, {}),
    }
    async with httpx.AsyncClient(base_url=host.url) as client:
        for name, (method, url, headers) in forged.items():
            body = [handshake_event] if headers is validation else [event()]
            response = await client.request(method, url, headers=headers, json=body)
            assert response.status_code == 401, (name, response.status_code, response.text)
            assert response.headers["content-type"] == "application/problem+json", name
            assert key not in response.text, name
            assert "validationResponse" not in response.text and "webhook-allowed-origin" not in response.headers
        assert hosts.recorder.of("on_event") == []

        by_header = await client.post(WEBHOOK, headers=notification | {"x-functions-key": key}, json=[event()])
        by_code = await client.post(f"{WEBHOOK}&code={key}", headers=notification, json=[event()])
        handshake = await client.options(WEBHOOK, headers={"webhook-request-origin": "eventgrid.azure.net"})
        options_with_key = await client.options(
            WEBHOOK, headers={"webhook-request-origin": "eventgrid.azure.net", "x-functions-key": key}
        )
    assert by_header.status_code == 200 and by_code.status_code == 200
    assert len(hosts.recorder.of("on_event")) == 2
    assert handshake.status_code == 401
    assert options_with_key.status_code == 200
    assert options_with_key.headers["webhook-allowed-origin"] == "eventgrid.azure.net"


async def test_each_in_process_devhost_gets_its_own_random_key(hosts: Hosts) -> None:
    first, second = await hosts.start(), await hosts.start()
    assert len(first.eventgrid_key) >= 40 and first.eventgrid_key != second.eventgrid_key
    async with httpx.AsyncClient() as client:
        crossed = await client.post(
            f"{second.url}{WEBHOOK}",
            headers={"aeg-event-type": "Notification", "x-functions-key": first.eventgrid_key},
            json=[event()],
        )
    assert crossed.status_code == 401


def devhost_cli(*args: str, state: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")} | {"PYTHONPATH": str(REPO_ROOT)}
    completed = subprocess.run(
        [sys.executable, "-m", "devhost", *args, "--state-dir", str(state)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return completed.stdout.strip()


def test_devhost_key_prints_the_state_directorys_key_kept_0600(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = devhost_cli("key", "eventgrid_extension", state=state)
    again = devhost_cli("key", "eventgrid_extension", state=state)
    elsewhere = devhost_cli("key", "eventgrid_extension", state=tmp_path / "other")
    assert first == again and len(first) >= 40
    assert elsewhere != first
    key_file = state / "eventgrid_extension.key"
    assert key_file.read_text().strip() == first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with pytest.raises(subprocess.CalledProcessError):
        devhost_cli("key", "master", state=state)


# --------------------------------------------------------------------------- request body limits


def chunked(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """``total`` bytes in HTTP/1.1 chunked framing, never ending (no final zero-length chunk)."""
    block = b"x" * size
    for _ in range(total // size):
        yield f"{size:x}\r\n".encode() + block + b"\r\n"


def raw_exchange(port: int, head: bytes, body: Iterable[bytes], timeout: float = 10.0) -> tuple[bytes, int, float]:
    """Sends ``head``, then ``body`` piece by piece until devhost answers or stops reading.

    Returns the raw response (read until devhost closes), the body bytes sent and the seconds taken.
    """
    started = time.monotonic()
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        for piece in body:
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(piece)
            except OSError:  # devhost closed the connection, or stopped reading (timeout)
                break
            sent += len(piece)
        response = b""
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            response += data
    return response, sent, time.monotonic() - started


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response[9:12])


def head(path: str, *headers: str) -> bytes:
    return "\r\n".join([f"POST {path} HTTP/1.1", "Host: devhost", *headers, "", ""]).encode()


async def measured(call: Any) -> tuple[Any, int]:
    """Runs a blocking client in a thread while devhost serves; returns its result and the peak of
    memory Python allocated meanwhile (devhost's buffers included)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = await asyncio.to_thread(call)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


@pytest.mark.parametrize("path", ["/api/v1/echo", WEBHOOK, "/no/such/route"])
async def test_a_content_length_over_the_hosts_limit_is_413_before_any_body_is_read(hosts: Hosts, path: str) -> None:
    host = await hosts.start()  # the Functions host's default limit: 100 MB
    declared = 300 * MiB
    request = head(path, f"Content-Length: {declared}", "Content-Type: application/json")
    (response, sent, seconds), peak = await measured(
        lambda: raw_exchange(host.port, request, itertools.repeat(b"x" * (64 * 1024), declared // (64 * 1024)))
    )
    assert status_of(response) == 413, response[:300]
    assert b"application/problem+json" in response and b"104857600" in response
    assert b"connection: close" in response.lower()
    assert seconds < 5
    assert sent < 32 * MiB, f"devhost kept reading: {sent} bytes"
    assert peak < 16 * MiB, f"{peak} bytes allocated"
    assert hosts.recorder.of("http") == []


async def test_a_huge_content_length_with_no_body_does_not_hang(hosts: Hosts) -> None:
    host = await hosts.start()
    (response, _, seconds), _ = await measured(
        lambda: raw_exchange(host.port, head("/api/v1/echo", "Content-Length: 999999999"), [], timeout=5)
    )
    assert status_of(response) == 413 and seconds < 3


async def test_a_chunked_body_growing_past_the_limit_is_413_with_bounded_memory(hosts: Hosts) -> None:
    host = await hosts.start(max_request_body_size=1 * MiB)
    request = head("/api/v1/echo", "Transfer-Encoding: chunked", "Content-Type: application/json")
    (response, sent, seconds), peak = await measured(lambda: raw_exchange(host.port, request, chunked(64 * MiB)))
    assert status_of(response) == 413, response[:300]
    assert b"1048576" in response
    assert seconds < 5
    assert sent < 16 * MiB, f"devhost kept reading: {sent} bytes"
    assert peak < 12 * MiB, f"{peak} bytes allocated"
    assert hosts.recorder.of("http") == []


async def test_a_body_within_the_limit_still_reaches_the_function(hosts: Hosts) -> None:
    host = await hosts.start(max_request_body_size=1 * MiB)
    async with httpx.AsyncClient(base_url=host.url) as client:
        exact = await client.post("/api/v1/echo", content=b"a" * MiB)
        over = await client.post("/api/v1/echo", content=b"a" * (MiB + 1))

        async def stream() -> AsyncIterator[bytes]:
            for _ in range(16):
                yield b"b" * (64 * 1024)

        streamed = await client.post("/api/v1/echo", content=stream())
    assert exact.status_code == 201 and len(exact.json()["body"]) == MiB
    assert over.status_code == 413
    assert streamed.status_code == 201 and streamed.json()["body"] == "b" * MiB


async def test_a_body_that_stops_arriving_is_answered_408(hosts: Hosts) -> None:
    host = await hosts.start(request_body_timeout=0.5)
    (response, _, seconds), _ = await measured(
        lambda: raw_exchange(host.port, head("/api/v1/echo", "Content-Length: 1000") + b"only ten b", [], timeout=5)
    )
    assert status_of(response) == 408 and seconds < 3
    assert hosts.recorder.of("http") == []


def test_the_limit_follows_the_hosts_setting() -> None:
    assert DevHostOptions.from_env({}).max_request_body_size == 104_857_600
    assert DevHostOptions.from_env({"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "2048"}).max_request_body_size == 2048


# ----------------------------------------------------------------------------- header bytes


async def test_header_bytes_reach_the_app_as_the_client_sent_them_when_they_are_utf8(hosts: Hosts) -> None:
    """The host's Kestrel decodes header bytes as UTF-8 and AsgiMiddleware encodes them as UTF-8 again:
    the ASGI scope holds the client's bytes (Starlette shows them decoded as Latin-1)."""
    host = await hosts.start()
    async with httpx.AsyncClient(base_url=host.url) as client:
        sent = await client.post("/api/v1/echo", headers=[("x-custom", "Blåbær sak".encode())], content=b"{}")
        latin1 = await client.post("/api/v1/echo", headers=[("x-custom", "Blåbær".encode("latin-1"))], content=b"{}")
    assert sent.status_code == 201
    assert sent.json()["x_custom"].encode("latin-1") == "Blåbær sak".encode()
    # Neither ASCII nor UTF-8: Kestrel refuses the request before any function runs.
    assert latin1.status_code == 400 and "x-custom" in latin1.json()["detail"]
    assert latin1.headers["content-type"] == "application/problem+json"
    assert len(hosts.recorder.of("http")) == 1
