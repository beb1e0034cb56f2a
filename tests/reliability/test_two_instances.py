"""Herald on two Functions instances (``devhost start --instances 2``): nothing may assume one process.

Publishers, a cursor reader and the webhook receiver see one Herald; behind the port two processes
take the requests (the kernel spreads connections over them) and both consume every queue. Timers
running once per occurrence across instances is tested in tests/devhost/test_instances.py."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections import Counter

import httpx
from aiohttp import web

from tests.support.azurite import free_port
from tests.support.devhost_process import E2E_SETTINGS, devhost_process, devhost_token, open_resource

SCOPES = "events.publish events.read events.subscribe"
PUBLISHERS = 8
EVENTS_EACH = 25


async def test_two_instances_read_every_event_once_in_order_and_push_it_once(azurite, settings, tmp_path):
    pushes: list[tuple[str, str]] = []  # (webhook-id, event id)

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        document = json.loads(body)
        if isinstance(document, dict) and document.get("type") == "no.reliability.two":  # not the validation
            pushes.append((request.headers.get("webhook-id", ""), document["id"]))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        with devhost_process(azurite, settings, tmp_path, E2E_SETTINGS, instances=2) as herald:
            token = devhost_token(herald.env, "org:991825827", SCOPES)
            resource = f"urn:reliability:two:{uuid.uuid4().hex[:8]}"
            open_resource(herald.port, herald.env, resource)
            # New connections for every request, so both instances take publishes and reads.
            limits = httpx.Limits(max_keepalive_connections=0)
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=herald.url, headers=headers, timeout=30, limits=limits) as http:
                subscription = await _subscribe(http, f"http://127.0.0.1:{port}/hook", resource)
                start = await http.get("/api/v1/events", params={"resource": resource, "from": "now"})
                cursor = _next(start)
                published: dict[int, list[str]] = {}
                stored = Counter[str]()

                async def publisher(lane: int) -> None:
                    published[lane] = []
                    for n in range(EVENTS_EACH):
                        event = {
                            "specversion": "1.0",
                            "id": f"{lane}-{n}",
                            "source": "urn:reliability:two",
                            "type": "no.reliability.two",
                            "resource": resource,
                        }
                        # The same event twice: the second is recognised as a duplicate, whichever
                        # instance takes it.
                        for _ in range(2):
                            response = await http.post(
                                "/api/v1/events",
                                content=json.dumps(event),
                                headers={"content-type": "application/cloudevents+json"},
                            )
                            assert response.status_code == 202, response.text
                            stored[event["id"]] += response.json()["stored"]
                        published[lane].append(event["id"])

                read: list[str] = []
                publishing = asyncio.gather(*(publisher(lane) for lane in range(PUBLISHERS)))
                everything = PUBLISHERS * EVENTS_EACH
                deadline = time.monotonic() + 60
                while len(read) < everything or not publishing.done():
                    assert time.monotonic() < deadline, f"read {len(read)} of {everything} through the cursor"
                    page = await http.get(cursor)
                    assert page.status_code == 200, page.text
                    read += [event["id"] for event in page.json()]
                    cursor = _next(page)
                    if not page.json():
                        await asyncio.sleep(0.1)
                await publishing

                assert stored == dict.fromkeys(stored, 1) and len(stored) == everything, "each event stored once"
                assert Counter(read) == dict.fromkeys(read, 1) and len(read) == everything, "each event read once"
                for lane, ids in published.items():
                    assert [i for i in read if i.startswith(f"{lane}-")] == ids, "a publisher's events in its order"

                while len({event for _, event in pushes}) < everything and time.monotonic() < deadline + 30:
                    await asyncio.sleep(0.2)
                await http.delete(f"/api/v1/subscriptions/{subscription}")
            log = (tmp_path / "devhost.log").read_text()
    finally:
        await runner.cleanup()

    assert sorted(event for _, event in pushes) == sorted(read), "every event pushed"
    assert Counter(webhook_id for webhook_id, _ in pushes).most_common(1)[0][1] == 1, "one push per webhook-id"
    served = {
        instance
        for instance, _ in re.findall(r"\[instance (\d)\] devhost function=http_api .*path=(/api/v1/events)\b", log)
    }
    assert served == {"0", "1"}, "both instances took publishes and reads"
    consumed = set(re.findall(r"\[instance (\d)\] devhost function=events_(?:inbound|outbound) ", log))
    assert consumed == {"0", "1"}, "both instances consumed the event queues"


def _next(response: httpx.Response) -> str:
    link = response.headers["link"]
    return link[link.index("/api/v1/") : link.index(">")]


async def _subscribe(http: httpx.AsyncClient, endpoint: str, resource: str) -> str:
    created = await http.post("/api/v1/subscriptions", json={"endPoint": endpoint, "resourceFilter": resource})
    assert created.status_code in (200, 201), created.text
    identifier: str = created.json()["id"]
    deadline = time.monotonic() + 30
    while (await http.get(f"/api/v1/subscriptions/{identifier}")).json()["status"] != "active":
        assert time.monotonic() < deadline, "the subscription never became active"
        await asyncio.sleep(0.2)
    return identifier
