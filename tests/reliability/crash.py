"""The crash scenario: publish while devhost is SIGKILLed and Azurite restarted, then count everything.

Publishers retry every request that was not answered 202 (connection refused while devhost is down,
5xx while Azurite is away, timeouts) and count only 202s as acknowledged. A cursor reader follows
next links throughout. Receivers run in their own process and record every POST.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.reliability.processes import DevhostProcess, DiskAzurite, ReceiverProcess

RESOURCES = ("urn:reliability:herald:alpha", "urn:reliability:herald:beta")
TYPES = ("no.case.opened", "no.case.closed", "no.other.thing")
SOURCE = "urn:herald:reliability:publisher"
VALIDATION = "platform.events.validatesubscription"


@dataclass(frozen=True)
class Scenario:
    events: int
    subscriptions: int
    kills: int
    azurite_restarts: int
    batch: int = 10
    publishers: int = 4
    seed: int = 0
    converge_seconds: float = 240.0


def make_event(i: int) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"ev-{i:06d}",
        "source": SOURCE,
        "type": TYPES[i % 3],
        "resource": RESOURCES[i % 2],
        "subject": f"person:{i % 4}",
        "data": {"n": i},
    }


def make_subscription(k: int, receiver: ReceiverProcess) -> dict[str, Any]:
    body: dict[str, Any] = {"endPoint": receiver.url(f"s{k}"), "resourceFilter": RESOURCES[k % 2]}
    kind = (k // 2) % 4
    if kind == 1:
        body["typeFilter"] = "no.case.*"
    elif kind == 2:
        body["subjectFilter"] = f"person:{k % 4}"
    elif kind == 3:
        body["typeFilter"] = "no.other.thing"
        body["sourceFilter"] = "urn:herald:reliability:*"
    return body


def expected_for(subscription: dict[str, Any], events: list[dict[str, Any]]) -> set[str]:
    """Written out independently of shared.subscriptions.model, so the test does not grade itself."""
    out = set()
    for e in events:
        if e["resource"] != subscription["resourceFilter"]:
            continue
        type_filter = subscription.get("typeFilter")
        if type_filter == "no.case.*" and not e["type"].startswith("no.case."):
            continue
        if type_filter == "no.other.thing" and e["type"] != "no.other.thing":
            continue
        if "subjectFilter" in subscription and e["subject"] != subscription["subjectFilter"]:
            continue
        out.add(e["id"])
    return out


@dataclass
class Figures:
    events_published: int = 0
    requests_sent: int = 0
    requests_retried: int = 0
    acknowledged: int = 0
    devhost_kills: int = 0
    azurite_restarts: int = 0
    stored: int = 0
    stored_duplicates: int = 0
    lost_acknowledged: int = 0
    deliveries_expected: int = 0
    deliveries_received: int = 0
    deliveries_missing: int = 0
    deliveries_duplicated: int = 0
    duplicate_rate_percent: float = 0.0
    cursor_reader_events: int = 0
    cursor_reader_duplicates: int = 0
    cursor_reader_missing: int = 0
    cursor_reader_retries: int = 0
    publish_seconds: float = 0.0
    converge_seconds: float = 0.0
    unexpected_answers: dict[str, int] = field(default_factory=dict)


class Chaos:
    def __init__(self, scenario: Scenario, root: Path) -> None:
        self.s = scenario
        self.rng = random.Random(scenario.seed)
        self.azurite = DiskAzurite(root / "azurite")
        (root / "devhost").mkdir()
        self.devhost = DevhostProcess(self.azurite, root / "devhost")
        self.receiver = ReceiverProcess(root / "received.jsonl")
        self.figures = Figures()
        self.acked: set[str] = set()
        self.events = [make_event(i) for i in range(scenario.events)]
        self.publishing_done = asyncio.Event()
        self.faults_done = asyncio.Event()
        self.log: list[str] = []
        self.started = time.monotonic()

    def count(self, answer: str) -> None:
        self.figures.unexpected_answers[answer] = self.figures.unexpected_answers.get(answer, 0) + 1

    def note(self, what: str) -> None:
        self.log.append(f"{time.monotonic() - self.started:7.2f}s {what} (acked {len(self.acked)})")

    # -- setup -------------------------------------------------------------------------------------
    async def setup(self, http: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
        self.azurite.start()
        self.receiver.start()
        await asyncio.to_thread(self.devhost.start)
        token = await asyncio.to_thread(self.devhost.token, "events.publish events.read events.subscribe admin")
        http.headers["Authorization"] = f"Bearer {token}"
        for resource in RESOURCES:  # open to every identity: publishing needs a resource policy naming the publisher
            opened = await http.put(f"/api/v1/admin/policies/{resource}", json={"publishers": ["*"], "owners": ["*"]})
            assert opened.status_code in (200, 404, 405), opened.text
        subscriptions: dict[str, dict[str, Any]] = {}
        for k in range(self.s.subscriptions):
            body = make_subscription(k, self.receiver)
            response = await http.post("/api/v1/subscriptions", json=body)
            assert response.status_code == 201, response.text
            subscriptions[f"/s{k}"] = {**body, "id": response.json()["id"]}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            statuses = [
                (await http.get(f"/api/v1/subscriptions/{sub['id']}")).json()["status"]
                for sub in subscriptions.values()
            ]
            if all(status == "active" for status in statuses):
                return subscriptions
            await asyncio.sleep(0.5)
        raise AssertionError(f"subscriptions not active: {statuses}")

    # -- publishers ---------------------------------------------------------------------------------
    async def publisher(self, http: httpx.AsyncClient, batches: asyncio.Queue[list[dict[str, Any]]]) -> None:
        while True:
            try:
                batch = batches.get_nowait()
            except asyncio.QueueEmpty:
                return
            body = json.dumps(batch)
            deadline = time.monotonic() + 300
            first = True
            while True:
                assert time.monotonic() < deadline, "a batch was never acknowledged in 300 s"
                self.figures.requests_sent += 1
                if not first:
                    self.figures.requests_retried += 1
                first = False
                try:
                    response = await http.post(
                        "/api/v1/events",
                        content=body,
                        headers={"content-type": "application/cloudevents-batch+json"},
                    )
                except httpx.HTTPError as error:
                    self.count(type(error).__name__)
                    await asyncio.sleep(0.2)
                    continue
                if response.status_code == 202:
                    accepted = response.json()["accepted"]
                    assert sorted(accepted) == sorted(e["id"] for e in batch), response.text
                    self.acked.update(accepted)
                    break
                assert response.status_code not in (400, 401, 403, 409, 413, 415), response.text
                self.count(str(response.status_code))
                await asyncio.sleep(0.3)

    # -- faults -------------------------------------------------------------------------------------
    async def chaos(self) -> None:
        n = self.s.events
        faults = [(self.rng.uniform(0.1, 0.9) * n, "kill") for _ in range(self.s.kills)]
        faults += [(self.rng.uniform(0.2, 0.8) * n, "azurite") for _ in range(self.s.azurite_restarts)]
        faults.sort()
        for threshold, kind in faults:
            while len(self.acked) < threshold and not self.publishing_done.is_set():
                await asyncio.sleep(0.02)
            await asyncio.sleep(self.rng.uniform(0, 0.5))  # a random moment, with requests in flight
            if kind == "kill":
                self.note("SIGKILL devhost")
                await asyncio.to_thread(self.devhost.kill)
                self.figures.devhost_kills += 1
                await asyncio.sleep(self.rng.uniform(0, 1.0))
                await asyncio.to_thread(self.devhost.start)
                self.note("devhost up")
            else:
                self.note("restart Azurite (SIGTERM, same ports and --location)")
                await asyncio.to_thread(self.azurite.restart)
                self.figures.azurite_restarts += 1
                self.note("Azurite up")
        self.faults_done.set()

    # -- the cursor reader --------------------------------------------------------------------------
    async def reader(self, http: httpx.AsyncClient, resource: str, seen: Counter[str], deadline: float) -> None:
        url = f"/api/v1/events?resource={resource}&size=500"
        mine = {e["id"] for e in self.events if e["resource"] == resource}
        while time.monotonic() < deadline:
            try:
                response = await http.get(url)
            except httpx.HTTPError:
                self.figures.cursor_reader_retries += 1
                await asyncio.sleep(0.3)
                continue
            if response.status_code != 200:
                self.figures.cursor_reader_retries += 1
                await asyncio.sleep(0.3)
                continue
            page = response.json()
            seen.update(e["id"] for e in page)
            link = response.headers["link"]
            url = link[link.index("/api/v1/") : link.index(">")]
            if not page:
                if self.publishing_done.is_set() and mine <= set(seen):
                    return
                await asyncio.sleep(0.2)

    # -- the run ------------------------------------------------------------------------------------
    async def run(self) -> Figures:
        f = self.figures
        timeout = httpx.Timeout(30.0, connect=5.0)
        async with httpx.AsyncClient(base_url=self.devhost.url, timeout=timeout) as http:
            subscriptions = await self.setup(http)
            batches: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
            for start in range(0, len(self.events), self.s.batch):
                batches.put_nowait(self.events[start : start + self.s.batch])
            seen: Counter[str] = Counter()
            began = time.monotonic()
            reader_deadline = began + 600
            readers = [asyncio.create_task(self.reader(http, r, seen, reader_deadline)) for r in RESOURCES]
            chaos = asyncio.create_task(self.chaos())
            await asyncio.gather(*(self.publisher(http, batches) for _ in range(self.s.publishers)))
            self.publishing_done.set()
            f.publish_seconds = round(time.monotonic() - began, 1)
            await chaos
            f.events_published = len(self.events)
            f.acknowledged = len(self.acked)

            # Converge: every subscription has every matching event (or the deadline passes).
            converge_start = time.monotonic()
            expected = {path: expected_for(sub, self.events) for path, sub in subscriptions.items()}
            received: dict[str, Counter[str]] = {}
            while True:
                received = {path: Counter() for path in subscriptions}
                for path, event_id, event_type, *_ in self.receiver.lines():
                    if event_type != VALIDATION and path in received and event_id is not None:
                        received[path][event_id] += 1
                if all(expected[p] <= set(received[p]) for p in subscriptions):
                    break
                if time.monotonic() - converge_start > self.s.converge_seconds:
                    break
                await asyncio.sleep(1.0)
            await asyncio.sleep(2.0)  # late duplicates still in flight are counted too
            received = {path: Counter() for path in subscriptions}
            for path, event_id, event_type, *_ in self.receiver.lines():
                if event_type != VALIDATION and path in received and event_id is not None:
                    received[path][event_id] += 1
            f.converge_seconds = round(time.monotonic() - converge_start, 1)
            f.deliveries_expected = sum(len(ids) for ids in expected.values())
            f.deliveries_received = sum(sum(c.values()) for c in received.values())
            f.deliveries_missing = sum(len(expected[p] - set(received[p])) for p in subscriptions)
            f.deliveries_duplicated = sum(sum(n - 1 for n in c.values() if n > 1) for c in received.values())
            unexpected = sum(len(set(received[p]) - expected[p]) for p in subscriptions)
            assert unexpected == 0, f"{unexpected} deliveries to subscriptions that do not match them"
            f.duplicate_rate_percent = round(100.0 * f.deliveries_duplicated / max(1, f.deliveries_expected), 3)

            await asyncio.gather(*readers)
            f.cursor_reader_events = sum(seen.values())
            f.cursor_reader_duplicates = sum(n - 1 for n in seen.values() if n > 1)
            f.cursor_reader_missing = len(self.acked - set(seen))

            # The log, read afresh: every acknowledged event stored exactly once.
            stored: Counter[str] = Counter()
            for resource in RESOURCES:
                url = f"/api/v1/events?resource={resource}&size=1000"
                for _ in range(10_000):
                    response = await http.get(url)
                    assert response.status_code == 200, response.text
                    page = response.json()
                    if not page:
                        break
                    stored.update(e["id"] for e in page)
                    link = response.headers["link"]
                    url = link[link.index("/api/v1/") : link.index(">")]
            f.stored = len(stored)
            f.stored_duplicates = sum(n - 1 for n in stored.values() if n > 1)
            f.lost_acknowledged = len(self.acked - set(stored))
        return f

    def close(self) -> None:
        self.devhost.stop()
        self.receiver.stop()
        self.azurite.stop()
