"""The README's commands, run as written against devhost started as a process (only the port differs)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import httpx
import pytest

from shared.api.events_publish import STRUCTURED
from shared.events.ingest import EVENTGRID_QUEUE
from shared.messaging import OutgoingMessage
from tests.support.azurite import free_port
from tests.support.devhost_process import devhost_token, open_resource, run_as_written, shell_blocks

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def run(block: str, port: int, env: dict[str, str]) -> str:
    return run_as_written(block, env, {"7071": str(port)}, timeout=60)


def test_readme_examples_work_as_written(devhost):
    port, env = devhost.port, devhost.env
    token_block, policy_block, publish_block, read_block, subscribe_block = shell_blocks(REPO / "README.md")
    prelude = token_block + "\n"

    policy = json.loads(run(policy_block, port, env))
    assert policy["publishers"] == ["org:991825827"]

    published = json.loads(run(prelude + publish_block, port, env))
    assert published == {"accepted": ["case-42-created"], "stored": 1, "duplicates": 0}
    again = json.loads(run(prelude + publish_block, port, env))
    assert again == {"accepted": ["case-42-created"], "stored": 0, "duplicates": 1}

    response = run(prelude + read_block, port, env)
    head, _, body = response.replace("\r\n", "\n").partition("\n\n")
    assert head.startswith("HTTP/1.1 200")
    assert re.search(r'^link: <http://127\.0\.0\.1:\d+/api/v1/events\?.*after=.*>; rel="next"$', head, re.M | re.I)
    [event] = json.loads(body)
    assert event["id"] == "case-42-created" and event["data"] == {"caseId": "42"}

    created = json.loads(run(prelude + subscribe_block, port, env))
    assert created["status"] == "pending" and created["secret"].startswith("whsec_")


def test_devhost_pushes_published_events_to_a_webhook(devhost, receiver_process):
    """Publish → inbound → outbound through devhost's own queue drivers, to a real receiver."""
    port, env = devhost.port, devhost.env
    url, received = receiver_process
    token = devhost_token(env, "org:991825827", "events.publish events.subscribe")
    headers = {"Authorization": f"Bearer {token}"}
    resource = f"urn:e2e:herald:{port}"
    open_resource(port, env, resource)

    def call(method: str, path: str, body: dict | list, content_type: str) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}",
            data=json.dumps(body).encode(),
            method=method,
            headers={**headers, "Content-Type": content_type},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    call("POST", "/api/v1/subscriptions", {"endPoint": url, "resourceFilter": resource}, "application/json")
    deadline = time.monotonic() + 20
    while not received() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert received(), "the validation event never arrived"
    events = [
        {"specversion": "1.0", "id": f"e2e-{i}", "source": "urn:e2e", "type": "t", "resource": resource}
        for i in range(20)
    ]
    call("POST", "/api/v1/events", events, "application/cloudevents-batch+json")
    while time.monotonic() < deadline + 20:
        ids = {e.get("id") for e in received() if e.get("type") == "t"}
        if len(ids) == 20:
            break
        time.sleep(0.1)
    assert {e.get("id") for e in received() if e.get("type") == "t"} == {f"e2e-{i}" for i in range(20)}


@pytest.fixture
def receiver_process(tmp_path):
    """A tiny webhook receiver in its own process, recording bodies to a file."""
    port = free_port()
    record = tmp_path / "received.jsonl"
    code = f"""
import http.server, json
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('content-length', 0)))
        with open({str(record)!r}, 'ab') as f: f.write(body.replace(b'\\n', b' ') + b'\\n')
        self.send_response(200); self.end_headers()
    def do_OPTIONS(self):
        self.send_response(405); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(('127.0.0.1', {port}), H).serve_forever()
"""
    process = subprocess.Popen([sys.executable, "-c", code])
    time.sleep(0.5)

    def received() -> list[dict]:
        if not record.exists():
            return []
        return [json.loads(line) for line in record.read_text().splitlines() if line.strip()]

    yield f"http://127.0.0.1:{port}/hook", received
    process.terminate()
    process.wait(timeout=10)


def test_devhost_runs_an_email_order_to_delivered(devhost):
    """Order → notifications-orders → notifications-email → local sink → Event Grid report → Delivered."""
    port, env = devhost.port, devhost.env
    token = devhost_token(env, "org:991825827", "notifications.order")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    order = {
        "idempotencyId": f"e2e-{port}",
        "sendersReference": "e2e",
        "notificationChannel": "Email",
        "emailTemplate": {"subject": "Your case", "body": "Hello $recipientName$"},
        "recipients": [{"emailAddress": "kari.nordmann@example.com"}],
    }
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/notifications/orders", data=json.dumps(order).encode(), headers=headers
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
        order_id = json.loads(response.read())["orderId"]
    deadline = time.monotonic() + 30
    status = {}
    while time.monotonic() < deadline:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/notifications/orders/{order_id}/status", headers=headers
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            status = json.loads(response.read())
        if [n["sendStatus"]["status"] for n in status["notifications"]] == ["Delivered"]:
            break
        time.sleep(0.2)
    assert [n["sendStatus"]["status"] for n in status["notifications"]] == ["Delivered"], status
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/dev/outbox", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        outbox = json.loads(response.read())
    assert any(
        "kari.nordmann@example.com" in json.dumps(item)
        for item in (outbox if isinstance(outbox, list) else outbox.get("messages", outbox.get("items", [])))
    )


async def test_devhost_ingests_cloudevents_routed_through_event_grid(devhost, services, stores):
    """The Event Grid custom topic puts each CloudEvent on events-eventgrid as the publisher sent it;
    ingest_event_grid publishes it, any UTC offset in ``time`` included, and it is readable as sent."""
    port, env = devhost.port, devhost.env
    resource = f"urn:e2e:herald:grid{port}"
    open_resource(port, env, resource)
    routed = [
        {
            "specversion": "1.0",
            "id": f"grid-{n}",
            "source": "urn:no:example:registry",
            "type": "no.example.changed",
            "time": moment,
            "subject": "org:991825827",
            "resource": resource,
            "data": {"changed": n},
        }
        for n, moment in enumerate(("2026-11-26T10:00:00+01:00", "2026-11-26T10:00:00.5-05:00"))
    ]
    await stores.bus.send(
        EVENTGRID_QUEUE,
        [
            OutgoingMessage(body=json.dumps(event).encode(), message_id=event["id"], content_type=STRUCTURED)
            for event in routed
        ],
    )
    token = devhost_token(env, "org:991825827", "events.read")
    deadline = time.monotonic() + 30
    events: list[dict] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        while len(events) < len(routed) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            read = await http.get(
                "/api/v1/events", params={"resource": resource}, headers={"Authorization": f"Bearer {token}"}
            )
            events = read.json()
    assert events == routed
