"""devhost against a real Azurite: HTTP, Service Bus peek-lock semantics, Event Grid, timers."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from azure.storage.queue.aio import QueueClient

from devhost import DevHost, DevHostOptions
from devhost.azurite import Azurite
from devhost.queue_properties import QueueProperties
from shared.adapters.storage_queue_bus import StorageQueueBus, decode_envelope, encode_envelope
from shared.messaging import OutgoingMessage
from tests.devhost.sample_app import Recorder, build_app

pytestmark = pytest.mark.asyncio
_prefixes = itertools.count(1)


class Harness:
    """One DevHost on the sample app, with a unique queue prefix so tests never share queues."""

    def __init__(self, azurite: Azurite, prefix: str, recorder: Recorder) -> None:
        self.azurite = azurite
        self.prefix = prefix
        self.recorder = recorder
        self.host: DevHost | None = None
        self.bus = StorageQueueBus(azurite.connection_string)

    async def start(self, queues: Mapping[str, QueueProperties] | None = None, **options: Any) -> DevHost:
        """``queues`` overrides the infra's queue properties, by unprefixed queue name."""
        app_options = {k: options.pop(k) for k in ("fail_times", "slow_seconds") if k in options}
        app = build_app(self.prefix, self.recorder, **app_options)
        defaults: dict[str, Any] = {
            "port": 0,
            "storage_connection_string": self.azurite.connection_string,
            "route_prefix": "",
            "provision_app": False,
        }
        if queues is not None:
            defaults["queue_properties"] = {f"{self.prefix}-{name}": value for name, value in queues.items()}
        defaults.update(options)
        self.host = DevHost(app, DevHostOptions(**defaults))
        await self.host.start()
        return self.host

    def queue(self, name: str) -> QueueClient:
        return QueueClient.from_connection_string(self.azurite.connection_string, f"{self.prefix}-{name}")

    async def send(self, name: str, message: OutgoingMessage) -> None:
        await self.bus.send(f"{self.prefix}-{name}", [message])

    def app_directory(
        self, root: Path, *, queues: Mapping[str, dict[str, Any]] | None = None, service_bus: Any = None
    ) -> Path:
        """A function directory with infra/service-bus-queues.json (unprefixed names) and host.json."""
        (root / "infra").mkdir(parents=True, exist_ok=True)
        declared = [{"name": f"{self.prefix}-{name}", **properties} for name, properties in (queues or {}).items()]
        (root / "infra" / "service-bus-queues.json").write_text(json.dumps(declared))
        extensions = {"serviceBus": service_bus} if service_bus is not None else {}
        (root / "host.json").write_text(json.dumps({"version": "2.0", "extensions": extensions}))
        return root

    async def close(self) -> None:
        if self.host is not None:
            await self.host.stop()
        await self.bus.close()


@pytest_asyncio.fixture
async def harness(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    prefix = f"t{next(_prefixes)}-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("DEVHOST_TEST_FLAKY_QUEUE", f"{prefix}-flaky")
    h = Harness(azurite, prefix, Recorder())
    yield h
    await h.close()


def message(body: dict[str, Any], **fields: Any) -> OutgoingMessage:
    return OutgoingMessage(
        body=json.dumps(body).encode(), message_id=fields.pop("message_id", str(uuid.uuid4())), **fields
    )


async def queue_length(queue: QueueClient) -> int:
    properties = await queue.get_queue_properties()
    return int(properties.approximate_message_count or 0)


async def wait_until_empty(queue: QueueClient, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while await queue_length(queue) > 0:
        assert time.monotonic() < deadline, f"{queue.queue_name} still holds messages"
        await asyncio.sleep(0.1)


# --- HTTP -----------------------------------------------------------------------------------


async def test_http_round_trip_keeps_path_query_headers_and_body(harness: Harness) -> None:
    host = await harness.start()
    async with httpx.AsyncClient(base_url=host.url) as client:
        response = await client.post(
            "/api/v1/echo?tag=a&tag=b&x=1",
            headers={"X-Custom": "hello", "Content-Type": "application/json"},
            content=b'{"ping": true}',
        )
    assert response.status_code == 201
    document = response.json()
    assert document["method"] == "POST"
    assert document["path"] == "/api/v1/echo"
    assert document["query_string"] == "tag=a&tag=b&x=1"
    assert document["tags"] == ["a", "b"]
    assert document["x_custom"] == "hello"
    assert document["content_type"] == "application/json"
    assert document["body"] == '{"ping": true}'
    assert document["invocation_id"]
    assert response.headers["x-echo"] == "yes"
    assert sorted(c.split(";")[0] for c in response.headers.get_list("set-cookie")) == ["a=1", "b=2"]
    assert response.headers["content-type"] == "application/json"


async def test_http_keeps_an_idle_connection_open_as_the_functions_host_does(harness: Harness) -> None:
    """The Functions host (Kestrel) keeps an idle connection 130 s; uvicorn's default of 5 s closed
    connections that clients' pools (aiohttp keeps them 15 s) were about to reuse."""
    host = await harness.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", int(host.url.rsplit(":", 1)[1]))
    request = b"GET /admin/host/status HTTP/1.1\r\nHost: devhost\r\n\r\n"
    try:
        for pause in (0.0, 6.0):
            await asyncio.sleep(pause)
            writer.write(request)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            assert head.startswith(b"HTTP/1.1 200"), head
            length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))[15:])
            await reader.readexactly(length)
    finally:
        writer.close()


async def test_http_serves_openapi_docs_and_app_404s(harness: Harness) -> None:
    host = await harness.start()
    async with httpx.AsyncClient(base_url=host.url) as client:
        openapi = await client.get("/openapi.json")
        docs = await client.get("/docs")
        missing = await client.get("/api/v1/nothing-here")
        status = await client.get("/admin/host/status")
    assert openapi.status_code == 200 and "/api/v1/echo" in openapi.json()["paths"]
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert missing.status_code == 404 and missing.json() == {"detail": "Not Found"}
    assert status.json()["state"] == "Running"


async def test_route_prefix_limits_what_reaches_the_app(harness: Harness) -> None:
    host = await harness.start(route_prefix="api")
    async with httpx.AsyncClient(base_url=host.url) as client:
        inside = await client.get("/api/v1/echo")
        outside = await client.get("/openapi.json")
    assert inside.status_code == 201 and inside.json()["path"] == "/api/v1/echo"
    assert outside.status_code == 404 and outside.headers["content-type"] == "application/problem+json"


# --- Service Bus ----------------------------------------------------------------------------


async def test_failed_deliveries_are_redelivered_with_increasing_delivery_count(harness: Harness) -> None:
    await harness.start(fail_times=2)
    sent = message(
        {"n": 1},
        correlation_id="corr-1",
        subject="subject-1",
        application_properties={"traceparent": "00-abc-def-01", "attempt": 7},
    )
    await harness.send("flaky", sent)
    await harness.recorder.wait_for(lambda: len(harness.recorder.of("flaky")) >= 3, within=15)
    calls = harness.recorder.of("flaky")
    assert [c["delivery_count"] for c in calls] == [1, 2, 3]
    first = calls[0]
    assert first["message_id"] == sent.message_id
    assert json.loads(first["body"]) == {"n": 1}
    assert first["properties"] == {"traceparent": "00-abc-def-01", "attempt": 7}
    assert (first["content_type"], first["correlation_id"], first["subject"]) == (
        "application/json",
        "corr-1",
        "subject-1",
    )
    assert calls[1]["at"] - calls[0]["at"] >= 0.9  # abandoned with a short back-off, not hot-looped
    async with harness.queue("flaky") as queue:
        await wait_until_empty(queue)  # completed after the successful third delivery


async def test_each_queue_dead_letters_at_its_own_max_delivery_count(harness: Harness, tmp_path: Path) -> None:
    """maxDeliveryCount comes from infra/service-bus-queues.json, queue by queue."""
    directory = harness.app_directory(
        tmp_path, queues={"poison": {"maxDeliveryCount": 3}, "flaky": {"maxDeliveryCount": 2}}
    )
    await harness.start(function_directory=directory, fail_times=2)
    sent = message({"n": 2}, application_properties={"k": "v"})
    flaky = message({"n": 22})
    await harness.send("poison", sent)
    await harness.send("flaky", flaky)
    dead_letter = harness.queue("poison-deadletter")
    async with dead_letter, harness.queue("poison") as source:
        deadline = time.monotonic() + 15
        while await queue_length(dead_letter) == 0:
            assert time.monotonic() < deadline, "message never dead-lettered"
            await asyncio.sleep(0.1)
        [dead] = await dead_letter.peek_messages(max_messages=5)
        assert await queue_length(source) == 0
    envelope = decode_envelope(str(dead.content))
    assert envelope.message_id == sent.message_id
    assert envelope.body == sent.body
    assert envelope.application_properties["k"] == "v"
    assert envelope.application_properties["DeadLetterReason"] == "MaxDeliveryCountExceeded"
    assert "cannot process this one" in str(envelope.application_properties["DeadLetterErrorDescription"])
    assert [c["delivery_count"] for c in harness.recorder.of("poison")] == [1, 2, 3]
    # flaky would succeed on its third delivery, but its queue allows two.
    async with harness.queue("flaky-deadletter") as flaky_dead_letter:
        deadline = time.monotonic() + 10
        while await queue_length(flaky_dead_letter) == 0:
            assert time.monotonic() < deadline, "flaky message never dead-lettered"
            await asyncio.sleep(0.1)
        [dead_flaky] = await flaky_dead_letter.peek_messages()
    assert decode_envelope(str(dead_flaky.content)).message_id == flaky.message_id
    assert [c["delivery_count"] for c in harness.recorder.of("flaky")] == [1, 2]


async def test_message_back_with_too_many_deliveries_is_dead_lettered_unprocessed(harness: Harness) -> None:
    """A host crash mid-handler leaves the lock to expire; past the max the message is not retried."""
    sent = message({"n": 3})
    await harness.bus.ensure_queues([f"{harness.prefix}-poison", f"{harness.prefix}-poison-deadletter"])
    await harness.send("poison", sent)
    async with harness.queue("poison") as source:
        for _ in range(2):  # two "crashed" deliveries: received, never settled
            [received] = [m async for m in source.receive_messages(max_messages=1, visibility_timeout=1)]
            await source.update_message(received, visibility_timeout=0)
    async with harness.queue("poison-deadletter") as dead_letter:
        await harness.start(queues={"poison": QueueProperties(max_delivery_count=1)})
        deadline = time.monotonic() + 10
        while await queue_length(dead_letter) == 0:
            assert time.monotonic() < deadline, "message never dead-lettered"
            await asyncio.sleep(0.1)
        [dead] = await dead_letter.peek_messages()
    envelope = decode_envelope(str(dead.content))
    assert envelope.message_id == sent.message_id
    assert envelope.application_properties["DeadLetterReason"] == "MaxDeliveryCountExceeded"
    assert harness.recorder.of("poison") == []


async def test_scheduled_message_is_not_delivered_before_its_time(harness: Harness) -> None:
    await harness.start()
    deliver_at = datetime.now(UTC) + timedelta(seconds=3)
    sent = message({"n": 4}, deliver_at=deliver_at)
    await harness.send("delayed", sent)
    await harness.recorder.wait_for(lambda: bool(harness.recorder.of("delayed")), within=10)
    [call] = harness.recorder.of("delayed")
    assert call["at"] >= deliver_at.timestamp() - 0.05
    assert call["at"] <= deliver_at.timestamp() + 2.5  # low latency once visible


async def backed_off(seconds: float = 1.0) -> None:
    """Long enough for an idle poller to back off past 50 ms, 100 ms, … up to its max_idle_wait."""
    await asyncio.sleep(seconds)


async def test_a_message_sent_in_this_process_wakes_the_idle_poller_at_once(harness: Harness) -> None:
    # A long max_idle_wait: without the wake-up the poller would sleep for seconds.
    await harness.start(max_idle_wait=5.0)
    await backed_off(2.0)
    for n in range(3):
        sent_at = time.time()
        await harness.send("plain", message({"n": n}))
        await harness.recorder.wait_for(lambda n=n: len(harness.recorder.of("plain")) > n, within=5)
        assert harness.recorder.of("plain")[n]["at"] - sent_at < 0.25
        await backed_off(1.0)


async def test_a_poller_that_received_fewer_than_it_asked_for_waits_instead_of_receiving_again_at_once(
    harness: Harness,
) -> None:
    """After a receive that did not fill its batch the queue was empty behind it: receiving again at
    once came back empty, one wasted request per message at a steady low rate."""
    host = await harness.start(max_idle_wait=5.0)
    [listener] = [each for each in host._listeners if each.queue_name == f"{harness.prefix}-plain"]
    receives: list[tuple[float, int]] = []  # (when it began, messages it returned)
    receive = listener._receive

    async def timed(count: int) -> list[Any]:
        began = time.monotonic()
        got = await receive(count)
        receives.append((began, len(got)))
        return got

    listener._receive = timed  # type: ignore[method-assign]
    await backed_off(1.0)
    for n in range(5):
        await harness.send("plain", message({"n": n}))
        await harness.recorder.wait_for(lambda n=n: len(harness.recorder.of("plain")) > n, within=5)
        await asyncio.sleep(0.3)
        [got] = [index for index, (_, count) in enumerate(receives) if count == 1][n : n + 1]
        following = receives[got + 1 :]
        assert following, "the poller went on receiving after the message"
        # The next receive waited for the first back-off step (50 ms); before, it came at once.
        assert following[0][0] - receives[got][0] >= 0.04, following[0][0] - receives[got][0]
        assert all(count == 0 for _, count in following)
        await backed_off(0.5)


async def test_a_message_sent_by_another_process_arrives_within_max_idle_wait(harness: Harness) -> None:
    await harness.start(max_idle_wait=1.0)
    await backed_off(2.0)
    async with harness.queue("plain") as queue:  # not through the app's bus: devhost hears nothing of it
        sent_at = time.time()
        await queue.send_message(encode_envelope(message({"n": 1}), datetime.now(UTC)), time_to_live=-1)
    await harness.recorder.wait_for(lambda: bool(harness.recorder.of("plain")), within=5)
    assert harness.recorder.of("plain")[0]["at"] - sent_at < 1.0 + 0.5


async def test_a_delayed_message_wakes_the_poller_at_its_time(harness: Harness) -> None:
    await harness.start(max_idle_wait=5.0)
    await backed_off(1.0)
    # Due while the poller sleeps (its receives are ~1.6, 3.2, 6.4 s after start): only a wake-up is in time.
    deliver_at = datetime.now(UTC) + timedelta(seconds=3)
    await harness.send("delayed", message({"n": 5}, deliver_at=deliver_at))
    await harness.recorder.wait_for(lambda: bool(harness.recorder.of("delayed")), within=10)
    [call] = harness.recorder.of("delayed")
    assert call["at"] >= deliver_at.timestamp() - 0.05
    # Visible at the next whole second after the send at the latest; received within a few tens of ms of it.
    assert call["at"] <= deliver_at.timestamp() + 1.0 + 0.3


async def test_slow_handler_keeps_its_lock_and_is_not_redelivered(harness: Harness) -> None:
    await harness.start(lock_seconds=2, slow_seconds=5)
    sent = message({"n": 5})
    await harness.send("slow", sent)
    await harness.recorder.wait_for(lambda: bool(harness.recorder.of("slow_done")), within=15)
    await asyncio.sleep(2.5)  # longer than a lock: an unrenewed message would be visible again by now
    assert [c["delivery_count"] for c in harness.recorder.of("slow")] == [1]
    async with harness.queue("slow") as queue:
        await wait_until_empty(queue)


async def test_each_queue_is_locked_for_its_own_lock_duration(
    harness: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = harness.app_directory(
        tmp_path, queues={"plain": {"lockDuration": "PT5S"}, "dedup": {"lockDuration": "PT2M"}}
    )
    with caplog.at_level(logging.WARNING, logger="devhost"):
        await harness.start(function_directory=directory)
    await harness.send("plain", message({"n": 7}))
    await harness.send("dedup", message({"n": 8}))
    await harness.send("delayed", message({"n": 9}))
    await harness.recorder.wait_for(
        lambda: all(harness.recorder.of(name) for name in ("plain", "dedup", "delayed")), within=10
    )

    def lock_seconds(name: str) -> float:
        [call] = harness.recorder.of(name)
        locked_until: datetime = call["locked_until"]
        received_at: float = call["at"]
        return locked_until.replace(tzinfo=locked_until.tzinfo or UTC).timestamp() - received_at

    assert 3.5 < lock_seconds("plain") <= 5.1
    assert 118 < lock_seconds("dedup") <= 120.1
    # A queue the file does not declare gets Service Bus's default lock, with a warning.
    assert 58 < lock_seconds("delayed") <= 60.1
    assert any(
        f"{harness.prefix}-delayed" in r.getMessage() and "not declared" in r.getMessage() for r in caplog.records
    )


async def test_handler_outliving_lock_renewal_is_redelivered_while_it_runs(
    harness: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """host.json's maxAutoLockRenewalDuration bounds renewal; the first handler then loses its lock."""
    directory = harness.app_directory(tmp_path, service_bus={"maxAutoLockRenewalDuration": "00:00:02"})
    await harness.start(function_directory=directory, lock_seconds=1, slow_seconds=5)
    sent = message({"n": 10})
    with caplog.at_level(logging.WARNING, logger="devhost"):
        await harness.send("outlive", sent)
        await harness.recorder.wait_for(lambda: len(harness.recorder.of("outlive_done")) >= 2, within=15)
        await asyncio.sleep(0.3)  # the first delivery's settlement, right after its handler returns
    calls = harness.recorder.of("outlive")
    assert [c["delivery_count"] for c in calls] == [1, 2]
    first_done, second_done = harness.recorder.of("outlive_done")
    assert (first_done["delivery_count"], second_done["delivery_count"]) == (2, 1)  # second finished first
    assert calls[1]["at"] < second_done["at"]
    # Renewed for 2 s, then expired under the running handler (lock 1 s: redelivered within ~3.5 s).
    assert 2.0 <= calls[1]["at"] - calls[0]["at"] < 4.0
    lost = [r.getMessage() for r in caplog.records if "MessageLockLost" in r.getMessage()]
    assert len(lost) == 1 and sent.message_id in lost[0] and "could not complete" in lost[0]
    async with harness.queue("outlive") as queue:
        await wait_until_empty(queue)  # completed by the second delivery


async def test_duplicate_message_id_within_the_window_is_dropped(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devhost")
    window = timedelta(seconds=2)
    await harness.start(
        queues={
            "dedup": QueueProperties(requires_duplicate_detection=True, duplicate_detection_window=window),
            "plain": QueueProperties(requires_duplicate_detection=False, duplicate_detection_window=window),
            "delayed": QueueProperties(
                requires_duplicate_detection=True, duplicate_detection_window=timedelta(minutes=10)
            ),
        }
    )
    first_sent = time.time()
    for body in ({"copy": 1}, {"copy": 2}):
        await harness.send("dedup", message(body, message_id="same-id"))
        await harness.send("plain", message(body, message_id="same-id"))
    # A delay past the storage maximum makes devhost re-send the same envelope to wait longer; that
    # copy is no duplicate of the message it replaces. Sent visible at once to stand for such a delay.
    due = datetime.now(UTC) + timedelta(seconds=2)
    scheduled = message({"scheduled": True}, deliver_at=due)
    async with harness.queue("delayed") as delayed:
        await delayed.send_message(encode_envelope(scheduled, datetime.now(UTC)), time_to_live=-1)
    async with harness.queue("dedup") as queue:
        await wait_until_empty(queue)
    await harness.recorder.wait_for(lambda: len(harness.recorder.of("plain")) == 2)
    assert [json.loads(c["body"]) for c in harness.recorder.of("dedup")] == [{"copy": 1}]
    assert any("dropped message same-id" in r.getMessage() for r in caplog.records)
    # Without duplicate detection both copies are delivered.
    assert sorted(json.loads(c["body"])["copy"] for c in harness.recorder.of("plain")) == [1, 2]

    # Sent again once the window has passed: a new message.
    await asyncio.sleep(max(0.0, first_sent + window.total_seconds() + 0.5 - time.time()))
    await harness.send("dedup", message({"copy": 3}, message_id="same-id"))
    await harness.recorder.wait_for(lambda: len(harness.recorder.of("dedup")) == 2)
    assert json.loads(harness.recorder.of("dedup")[1]["body"]) == {"copy": 3}

    await harness.recorder.wait_for(lambda: bool(harness.recorder.of("delayed")), within=10)
    [rescheduled] = harness.recorder.of("delayed")
    assert rescheduled["message_id"] == scheduled.message_id
    assert rescheduled["at"] >= due.timestamp() - 0.05


async def test_cardinality_many_delivers_batches(harness: Harness) -> None:
    ids = [str(uuid.uuid4()) for _ in range(5)]
    await harness.bus.ensure_queues([f"{harness.prefix}-batch"])
    await harness.bus.send(f"{harness.prefix}-batch", [message({"i": i}, message_id=ids[i]) for i in range(5)])
    await harness.start()
    await harness.recorder.wait_for(lambda: sum(c["size"] for c in harness.recorder.of("batch")) >= 5)
    delivered = [i for call in harness.recorder.of("batch") for i in call["ids"]]
    assert sorted(delivered) == sorted(ids)
    assert len(harness.recorder.of("batch")) < 5  # at least one invocation carried several messages


# --- Event Grid -----------------------------------------------------------------------------


def event(event_type: str = "Herald.Event.Published", **overrides: Any) -> dict[str, Any]:
    document = {
        "id": str(uuid.uuid4()),
        "topic": "/subscriptions/x/resourceGroups/y/providers/Microsoft.EventGrid/topics/herald",
        "subject": "orders/42",
        "eventType": event_type,
        "eventTime": "2024-05-01T12:00:00.1234567Z",
        "data": {"order": 42},
        "dataVersion": "1.0",
    }
    document.update(overrides)
    return document


async def post_to_eventgrid(host: DevHost, function: str, body: Any, kind: str = "Notification") -> httpx.Response:
    """One delivery to devhost's Event Grid webhook for ``function``, with the system key."""
    async with httpx.AsyncClient(base_url=host.url) as client:
        return await client.post(
            f"/runtime/webhooks/eventgrid?functionName={function}",
            headers={"aeg-event-type": kind, "x-functions-key": host.eventgrid_key},
            json=body,
        )


async def test_event_grid_validation_handshake(harness: Harness) -> None:
    host = await harness.start()
    validation = event("Microsoft.EventGrid.SubscriptionValidationEvent", data={"validationCode": "code-123"})
    response = await post_to_eventgrid(host, "on_event", [validation], kind="SubscriptionValidation")
    assert response.status_code == 200
    assert response.json() == {"validationResponse": "code-123"}
    assert harness.recorder.of("on_event") == []


async def test_event_grid_notification_invokes_function_per_event(harness: Harness) -> None:
    host = await harness.start()
    first, second = event(), event(subject="orders/43")
    cloud = {
        "specversion": "1.0",
        "id": "ce-1",
        "source": "/herald",
        "type": "Herald.Cloud",
        "subject": "c/1",
        "time": "2024-05-01T12:00:00Z",
        "data": {"c": 1},
    }
    url = "/runtime/webhooks/eventgrid?functionName=on_event"
    notification = {"aeg-event-type": "Notification"}
    async with httpx.AsyncClient(base_url=host.url) as client:
        batch = await client.post(f"{url}&code={host.eventgrid_key}", headers=notification, json=[first, second])
        single = await client.post(url, headers=notification | {"x-functions-key": host.eventgrid_key}, json=cloud)
    assert batch.status_code == 200 and single.status_code == 200
    calls = harness.recorder.of("on_event")
    assert [c["id"] for c in calls] == [first["id"], second["id"], "ce-1"]
    assert calls[0]["event_type"] == "Herald.Event.Published"
    assert calls[0]["data"] == {"order": 42}
    assert calls[0]["topic"] == first["topic"]
    assert calls[0]["event_time"] == datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert [c["kind"] for c in calls] == ["EventGridEvent", "EventGridEvent", "CloudEvent"]
    assert (calls[2]["event_type"], calls[2]["topic"]) == ("Herald.Cloud", "/herald")


async def test_event_grid_input_the_worker_rejects_fails_the_invocation_with_its_error(harness: Harness) -> None:
    """azure-functions parses event times with fixed formats: an offset other than UTC is refused, as in Azure."""
    host = await harness.start()
    oslo = event() | {"eventTime": "2026-11-26T10:00:00+01:00"}
    response = await post_to_eventgrid(host, "on_event", [oslo])
    assert response.status_code == 500
    assert "time data '2026-11-26T10:00:00+01:00' does not match format" in response.json()["detail"]
    assert harness.recorder.of("on_event") == []


async def test_event_grid_str_parameter_gets_the_raw_event(harness: Harness) -> None:
    host = await harness.start()
    cloud = {"specversion": "1.0", "id": "ce-raw", "source": "/x", "type": "T", "time": "2026-11-26T10:00:00-05:00"}
    response = await post_to_eventgrid(host, "on_raw_event", cloud)
    assert response.status_code == 200
    (call,) = harness.recorder.of("on_raw_event")
    assert json.loads(call["raw"]) == cloud


async def test_event_grid_errors(harness: Harness) -> None:
    host = await harness.start()
    failing = await post_to_eventgrid(host, "on_event_fails", [event()])
    unknown = await post_to_eventgrid(host, "nope", [event()])
    async with httpx.AsyncClient(base_url=host.url, headers={"x-functions-key": host.eventgrid_key}) as client:
        no_header = await client.post("/runtime/webhooks/eventgrid?functionName=on_event", json=[event()])
    assert failing.status_code == 500
    assert failing.headers["content-type"] == "application/problem+json"
    assert "event handler exploded" in failing.json()["detail"]
    assert unknown.status_code == 404
    assert no_header.status_code == 400


# --- Timers ---------------------------------------------------------------------------------


async def test_timer_runs_on_startup_and_on_schedule(harness: Harness) -> None:
    started = time.time()
    await harness.start()
    await harness.recorder.wait_for(lambda: len(harness.recorder.of("tick")) >= 3, within=5)
    ticks = harness.recorder.of("tick")
    assert ticks[0]["at"] - started < 1.0  # run_on_startup
    assert not any(t["past_due"] for t in ticks)
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(ticks[1:])]
    assert all(0.5 < gap < 1.6 for gap in gaps), gaps


# --- lifecycle ------------------------------------------------------------------------------


async def test_stop_waits_for_in_flight_handlers(harness: Harness) -> None:
    host = await harness.start(slow_seconds=1.5)
    await harness.send("slow", message({"n": 6}))
    await harness.recorder.wait_for(lambda: bool(harness.recorder.of("slow")))
    await host.stop()
    harness.host = None
    assert harness.recorder.of("slow_done"), "stop() returned before the in-flight handler finished"
    async with harness.queue("slow") as queue:
        assert await queue_length(queue) == 0
