"""Ordered push per subject (``ordering: subject``): one subject's events reach the endpoint in log
order, each only after the previous one was delivered or dead-lettered, while other subjects go on.

The pipeline runs in-process on Azurite with a recording bus, so a test decides in which order (and
how concurrently) inbound and outbound messages are handled: fan-outs of one resource finishing out
of order, retries arriving whenever, a crash between a claim and its send."""

from __future__ import annotations

import asyncio
import json
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.adapters.table_fanout_marks import TableFanoutMarks
from shared.adapters.table_ordered_lanes import TableLaneStore
from shared.clock import SystemClock
from shared.events.dispatch import INBOUND_QUEUE, InboundMessage
from shared.messaging import OutgoingMessage
from shared.subscriptions.endpoint_guard import EndpointGuard
from shared.subscriptions.fanout import Fanout
from shared.subscriptions.messages import OUTBOUND_QUEUE, RETRY_QUEUE, DeliveryBatch, ValidationMessage
from shared.subscriptions.model import Status
from shared.subscriptions.ordering import STALE_AFTER, OrderedLanes, lane_of
from shared.subscriptions.ports import Lane
from shared.subscriptions.stats import DeliveryStats
from tests.subscriptions.conftest import active_subscription, events_received, worker_with
from tests.support.events import event, publish
from tests.support.fakes import FakeClock, RecordingBus
from tests.support.pipeline import drain, take
from tests.support.receiver import Behaviour


class Pipeline:
    """Fan-out, lanes and the outbound worker of the test's Herald, on one recording bus."""

    def __init__(self, herald, *, clock=None, schedule=(1,), bus=None, store=None, guard=None) -> None:
        stores = herald.stores
        self.stores = stores
        self.bus = bus or RecordingBus()
        self.clock = clock or SystemClock()
        self.store = store or TableLaneStore(stores.tables)
        self.lanes = OrderedLanes(
            lanes=self.store,
            progress=TableFanoutMarks(stores.tables),
            event_log=stores.event_log,
            subscriptions=stores.subscription_store,
            bus=self.bus,
            clock=self.clock,
        )
        self.fanout = Fanout(
            stores.subscription_store, TableFanoutMarks(stores.tables), self.bus, rows=stores.inbound, lanes=self.lanes
        )
        self.worker = worker_with(herald, self.clock, self.bus, schedule, lanes=self.lanes, guard=guard)

    async def inbound(self, resource: str) -> list[InboundMessage]:
        """The inbound messages the publishes of ``resource`` sent, taken off the real queue."""
        bodies = await take(self.stores, INBOUND_QUEUE, lambda body: resource.encode() in body, visibility_timeout=60)
        return sorted((InboundMessage.model_validate_json(b) for b in bodies), key=lambda m: m.seqs[0])

    async def push(self, rng: random.Random | None = None, *, rounds: int = 200, to_rest: bool = True) -> None:
        """Handle outbound and retry messages, round by round, until none is left (``to_rest``) or for
        ``rounds``; retries at once, whatever their due time. With ``rng``, each round's messages in
        a random order, all at once."""
        for _ in range(rounds):
            messages = self.bus.take(OUTBOUND_QUEUE) + self.bus.take(RETRY_QUEUE)
            if not messages:
                return
            if rng is not None:
                rng.shuffle(messages)
            await asyncio.gather(*(self._handle(m) for m in messages))
        assert not to_rest, "the pipeline did not come to rest"

    async def _handle(self, message: OutgoingMessage) -> None:
        batch = DeliveryBatch.model_validate_json(message.body)
        await self.worker.handle(batch.deliveries(), message_id=message.message_id)

    async def entries(self, subscription_id: str, subject: str) -> list[tuple[int, int]]:
        lane = Lane(subscription_id, lane_of(subject))
        return [(d.seq, d.index) for d in await self.store.first(lane, 1000)]


async def ordered(client, issuer, stores, receiver, resource, path: str) -> dict[str, Any]:
    return await active_subscription(
        client,
        issuer,
        stores,
        {"endPoint": receiver.url(path), "resourceFilter": resource, "ordering": "subject"},
    )


class Recorded:
    """What the endpoint answered, per request, in the order it answered (the n-th POST to the path)."""

    def __init__(self, rng: random.Random, *, failing: float) -> None:
        self.rng = rng
        self.failing = failing
        self.answers: dict[int, int] = {}

    def __call__(self, n: int) -> int:
        status = 500 if self.rng.random() < self.failing else 200
        self.answers[n] = status
        return status


def attempts_by_subject(receiver, path: str, answers: dict[int, int]) -> dict[str, list[tuple[str, int]]]:
    """Each subject's (event id, status answered) in the order the endpoint saw them."""
    seen: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for n, post in enumerate(receiver.posts(path), 1):
        body = json.loads(post.body)
        if body["type"] == "platform.events.validatesubscription":
            continue
        seen[body["subject"]].append((body["id"], answers.get(n, 200)))
    return seen


def assert_in_log_order(attempts: list[tuple[str, int]], published: list[str]) -> None:
    """Every event delivered once and in order; no event tried before the one before it was delivered."""
    delivered = [event_id for event_id, status in attempts if 200 <= status < 300]
    assert delivered == published, (delivered, published)
    position = 0
    for event_id, status in attempts:
        assert event_id == published[position], f"{event_id} pushed while {published[position]} was not delivered"
        if 200 <= status < 300:
            position += 1


async def test_a_flaky_endpoint_gets_each_subjects_events_in_log_order(
    client, issuer, receiver, resource, herald, stores
):
    rng = random.Random(20240611)
    sub = await ordered(client, issuer, stores, receiver, resource, "ordered")
    answers = Recorded(rng, failing=0.3)
    receiver.behaviours["/ordered"] = Behaviour(status=answers)
    subjects = [f"person:{n}" for n in range(8)]
    published: dict[str, list[str]] = defaultdict(list)
    requests = []
    for _ in range(12):  # twelve publishes: twelve inbound messages of one resource
        batch = []
        for _ in range(rng.randint(1, 4)):
            subject = rng.choice(subjects)
            event_id = f"{subject}-{len(published[subject])}"
            published[subject].append(event_id)
            batch.append(event(resource, event_id, subject=subject))
        requests.append(batch)
    for batch in requests:
        assert (await publish(client, issuer.headers("events.publish"), batch)).status_code == 202

    pipeline = Pipeline(herald)
    messages = await pipeline.inbound(resource)
    assert len(messages) == 12
    rng.shuffle(messages)  # fan-outs finishing out of log order, several at once
    for start in range(0, len(messages), 3):
        await asyncio.gather(*(pipeline.fanout.handle(m) for m in messages[start : start + 3]))
        await pipeline.push(rng, rounds=1, to_rest=False)
    await pipeline.push(rng)

    attempts = attempts_by_subject(receiver, "ordered", answers.answers)
    assert set(attempts) == set(published)
    for subject, ids in published.items():
        assert_in_log_order(attempts[subject], ids)
        assert await pipeline.entries(sub["id"], subject) == []
    assert any(status == 500 for tried in attempts.values() for _, status in tried)  # the endpoint was flaky
    webhook_ids: dict[str, set[str]] = defaultdict(set)
    for post in receiver.posts("ordered"):
        webhook_ids[json.loads(post.body)["id"]].add(post.headers["webhook-id"])
    assert all(len(ids) == 1 for ids in webhook_ids.values())  # a retry is the same push


async def test_a_row_fanned_out_late_goes_before_the_later_rows_of_its_subject(
    client, issuer, receiver, resource, herald, stores
):
    await ordered(client, issuer, stores, receiver, resource, "late")
    for n in range(3):
        await publish(client, issuer.headers("events.publish"), [event(resource, f"case-{n}", subject="person:1")])
    pipeline = Pipeline(herald)
    first, second, third = await pipeline.inbound(resource)

    await pipeline.fanout.handle(third)
    await pipeline.fanout.handle(second)
    assert pipeline.bus.sent == []  # an earlier row of the subject is still on its way: nothing goes
    await pipeline.fanout.handle(first)
    await pipeline.push()
    assert [e["id"] for e in events_received(receiver, "late")] == ["case-0", "case-1", "case-2"]


async def test_rows_of_other_subjects_still_on_their_way_hold_nothing_up(
    client, issuer, receiver, resource, herald, stores
):
    await ordered(client, issuer, stores, receiver, resource, "others")
    await publish(client, issuer.headers("events.publish"), [event(resource, "b-0", subject="person:2")])
    await publish(client, issuer.headers("events.publish"), [event(resource, "a-0", subject="person:1")])
    pipeline = Pipeline(herald)
    other, mine = await pipeline.inbound(resource)

    await pipeline.fanout.handle(mine)  # the earlier row (another subject) is not fanned out yet
    await pipeline.push()
    assert [e["id"] for e in events_received(receiver, "others")] == ["a-0"]
    await pipeline.fanout.handle(other)
    await pipeline.push()
    assert [e["id"] for e in events_received(receiver, "others")] == ["a-0", "b-0"]


async def test_a_dead_lettered_head_lets_the_next_event_go(client, issuer, receiver, resource, herald, stores):
    sub = await ordered(client, issuer, stores, receiver, resource, "dead")
    failing = {"case-0"}

    def answer(_: int) -> int:
        body = json.loads(receiver.posts("dead")[-1].body)
        return 500 if body["id"] in failing else 200

    receiver.behaviours["/dead"] = Behaviour(status=answer)
    await publish(
        client,
        issuer.headers("events.publish"),
        [event(resource, "case-0", subject="person:1"), event(resource, "case-1", subject="person:1")],
    )
    clock = FakeClock(datetime.now(UTC))
    pipeline = Pipeline(herald, clock=clock, schedule=(43200,))  # attempts at 0, 12 h, 24 h: then dead
    for message in await pipeline.inbound(resource):
        await pipeline.fanout.handle(message)
    for _ in range(5):
        for retry in pipeline.bus.take(RETRY_QUEUE):
            assert retry.deliver_at is not None
            clock.set(retry.deliver_at)
            pipeline.bus.sent.append((OUTBOUND_QUEUE, retry))
        await pipeline.push(rounds=1, to_rest=False)

    ids = [e["id"] for e in events_received(receiver, "dead")]
    assert ids == ["case-0", "case-0", "case-0", "case-1"]  # case-1 waited for case-0's last attempt
    letters = (
        await client.get(f"/api/v1/subscriptions/{sub['id']}/deadletters", headers=issuer.headers("events.subscribe"))
    ).json()
    assert [letter["eventId"] for letter in letters["deadLetters"]] == ["case-0"]
    assert await pipeline.entries(sub["id"], "person:1") == []


async def test_a_deleted_subscription_drains_its_lanes(client, issuer, receiver, resource, herald, stores):
    sub = await ordered(client, issuer, stores, receiver, resource, "gone")
    await publish(
        client, issuer.headers("events.publish"), [event(resource, f"case-{n}", subject="person:1") for n in range(4)]
    )
    pipeline = Pipeline(herald)
    for message in await pipeline.inbound(resource):
        await pipeline.fanout.handle(message)
    assert len(await pipeline.entries(sub["id"], "person:1")) == 4
    deleted = await client.delete(f"/api/v1/subscriptions/{sub['id']}", headers=issuer.headers("events.subscribe"))
    assert deleted.status_code == 204
    await pipeline.push()
    assert events_received(receiver, "gone") == []
    assert await pipeline.entries(sub["id"], "person:1") == []


async def test_a_redelivered_inbound_message_appends_nothing_twice(client, issuer, receiver, resource, herald, stores):
    sub = await ordered(client, issuer, stores, receiver, resource, "again")
    events = [event(resource, f"{s}-{n}", subject=s) for n in range(3) for s in ("person:1", "person:2")]
    await publish(client, issuer.headers("events.publish"), events)
    pipeline = Pipeline(herald)
    [message] = await pipeline.inbound(resource)
    await pipeline.fanout.handle(message)
    before = {s: await pipeline.entries(sub["id"], s) for s in ("person:1", "person:2")}
    sent = [m for _, m in pipeline.bus.sent]
    await pipeline.fanout.handle(message)  # the same inbound message again (a lost lock, a sweeper re-send)
    assert {s: await pipeline.entries(sub["id"], s) for s in ("person:1", "person:2")} == before
    assert [m for _, m in pipeline.bus.sent] == sent  # nothing claimed or sent again

    await pipeline.push()
    received = [e["id"] for e in events_received(receiver, "again")]
    assert sorted(received) == sorted(e["id"] for e in events)  # each once
    for subject in ("person:1", "person:2"):
        assert [i for i in received if i.startswith(subject)] == [f"{subject}-{n}" for n in range(3)]


class OneSubscriptionsLanes(TableLaneStore):
    """The lanes table as the sweep sees it, narrowed to one subscription: the tests share Azurite."""

    def __init__(self, tables, subscription_id: str) -> None:
        super().__init__(tables)
        self._only = subscription_id

    async def heads(self, forget_before):
        async for lane, head in super().heads(forget_before):
            if lane.subscription_id == self._only:
                yield lane, head


class LosingBus(RecordingBus):
    """Loses the next sends to the outbound queue: the process died between claiming and sending."""

    def __init__(self) -> None:
        super().__init__()
        self.losing = True

    async def send(self, queue: str, messages) -> None:
        if queue == OUTBOUND_QUEUE and self.losing:
            raise ConnectionError("the process died before the send")
        await super().send(queue, messages)


async def test_a_claim_whose_send_was_lost_is_sent_again_by_the_sweep(
    client, issuer, receiver, resource, herald, stores
):
    sub = await ordered(client, issuer, stores, receiver, resource, "lost")
    await publish(client, issuer.headers("events.publish"), [event(resource, "case-0", subject="person:1")])
    await publish(client, issuer.headers("events.publish"), [event(resource, "case-1", subject="person:1")])
    clock = FakeClock(datetime.now(UTC))
    lanes = OneSubscriptionsLanes(stores.tables, sub["id"])
    bus = LosingBus()
    pipeline = Pipeline(herald, clock=clock, bus=bus, store=lanes)
    first, second = await pipeline.inbound(resource)
    with pytest.raises(ConnectionError):
        await pipeline.fanout.handle(first)
    bus.losing = False
    await pipeline.fanout.handle(first)  # redelivered: the lane already has its head out
    await pipeline.fanout.handle(second)
    assert pipeline.bus.sent == []

    assert (await pipeline.lanes.sweep()).resent == 0  # not yet: it might still be on its way
    clock.advance(STALE_AFTER + timedelta(seconds=1))
    assert (await pipeline.lanes.sweep()).resent == 1
    await pipeline.push()
    assert [e["id"] for e in events_received(receiver, "lost")] == ["case-0", "case-1"]
    assert await pipeline.entries(sub["id"], "person:1") == []


async def test_concurrent_kicks_claim_a_lane_once(client, issuer, receiver, resource, herald, stores):
    sub = await ordered(client, issuer, stores, receiver, resource, "kicks")
    await publish(
        client, issuer.headers("events.publish"), [event(resource, f"case-{n}", subject="person:1") for n in range(3)]
    )
    pipeline = Pipeline(herald)
    [message] = await pipeline.inbound(resource)
    rows = await stores.inbound.load(message)
    deliveries = await pipeline.fanout.match(resource, rows)
    lanes = await pipeline.lanes.append(deliveries)  # appended, not yet kicked
    sent = await asyncio.gather(*(pipeline.lanes.kick(lanes) for _ in range(10)))
    assert sum(sent) == 1
    [(queue, only)] = pipeline.bus.sent
    assert queue == OUTBOUND_QUEUE
    assert [(d.seq, d.index) for d in DeliveryBatch.model_validate_json(only.body).deliveries()] == [
        (message.seqs[0], 0)
    ]
    assert len(await pipeline.entries(sub["id"], "person:1")) == 3
    await pipeline.push()
    assert [e["id"] for e in events_received(receiver, "kicks")] == ["case-0", "case-1", "case-2"]


async def test_an_unordered_subscription_never_touches_the_lanes(client, issuer, receiver, resource, herald, stores):
    await active_subscription(client, issuer, stores, {"endPoint": receiver.url("plain"), "resourceFilter": resource})
    await publish(
        client, issuer.headers("events.publish"), [event(resource, f"case-{n}", subject="person:1") for n in range(3)]
    )
    pipeline = Pipeline(herald)
    for message in await pipeline.inbound(resource):
        await pipeline.fanout.handle(message)
    [(queue, sent)] = pipeline.bus.sent
    assert queue == OUTBOUND_QUEUE
    assert all(d.lane is None for d in DeliveryBatch.model_validate_json(sent.body).deliveries())
    assert b'"o"' not in sent.body  # the message is as before ordering existed
    await pipeline.push()
    assert sorted(e["id"] for e in events_received(receiver, "plain")) == ["case-0", "case-1", "case-2"]


async def test_a_stuck_subjects_retries_do_not_hold_back_the_other_subjects(
    client, issuer, receiver, resource, herald, stores
):
    """Its lane's retries are refused for its own sake: they put the endpoint on no probation, so the
    others' pushes are not limited to one at a time or deferred because of it."""
    await ordered(client, issuer, stores, receiver, resource, "stuck")

    def answer(n: int) -> int:
        return 500 if json.loads(receiver.posts("stuck")[n - 1].body).get("subject") == "person:stuck" else 200

    receiver.behaviours["/stuck"] = Behaviour(status=answer)
    guard = EndpointGuard()
    pipeline = Pipeline(herald, guard=guard)
    url = receiver.url("stuck")
    await publish(client, issuer.headers("events.publish"), [event(resource, "s-0", subject="person:stuck")])
    for message in await pipeline.inbound(resource):
        await pipeline.fanout.handle(message)
    await pipeline.push(rounds=1, to_rest=False)  # its first push fails: that one counts against the endpoint
    [retry] = pipeline.bus.take(RETRY_QUEUE)
    await publish(client, issuer.headers("events.publish"), [event(resource, "h-0", subject="person:1")])
    for message in await pipeline.inbound(resource):
        await pipeline.fanout.handle(message)
    await pipeline.push(rounds=1, to_rest=False)  # another subject's push succeeds
    for _ in range(3):  # the stuck head is tried again, and again refused
        pipeline.bus.sent.append((OUTBOUND_QUEUE, retry))
        await pipeline.push(rounds=1, to_rest=False)
        [retry] = pipeline.bus.take(RETRY_QUEUE)

    first, second = guard.admit(url), guard.admit(url)
    assert first.admitted and second.admitted  # not on probation (one at a time, the rest deferred)
    for admission in (first, second):
        guard.release(url, admission.ticket, success=None)
    pushed = [json.loads(p.body)["id"] for p in receiver.posts("stuck")[1:]]  # after the validation
    assert pushed == ["s-0", "h-0", "s-0", "s-0", "s-0"]


async def test_the_apps_own_triggers_push_ordered_subscriptions_in_order(client, issuer, receiver, resource, stores):
    await ordered(client, issuer, stores, receiver, resource, "app")
    for n in range(3):
        await publish(client, issuer.headers("events.publish"), [event(resource, f"case-{n}", subject="person:1")])
    await drain(stores, (INBOUND_QUEUE, OUTBOUND_QUEUE))
    assert [e["id"] for e in events_received(receiver, "app")] == ["case-0", "case-1", "case-2"]


async def test_events_published_while_a_new_endpoint_is_validated_wait_in_their_lane(
    client, issuer, receiver, resource, herald, stores
):
    sub = await ordered(client, issuer, stores, receiver, resource, "o-old")
    patched = await client.patch(
        f"/api/v1/subscriptions/{sub['id']}",
        json={"endPoint": receiver.url("o-new")},
        headers=issuer.headers("events.subscribe"),
    )
    assert patched.status_code == 200 and patched.json()["status"] == "pending"
    await publish(
        client,
        issuer.headers("events.publish"),
        [event(resource, "case-0", subject="person:1"), event(resource, "case-1", subject="person:1")],
    )
    pipeline = Pipeline(herald)
    for message in await pipeline.inbound(resource):
        await pipeline.fanout.handle(message)
    await pipeline.push(rounds=2, to_rest=False)  # the head is claimed and waits for the validation
    assert receiver.posts("o-new") == [] and events_received(receiver, "o-old") == []
    assert len(await pipeline.entries(sub["id"], "person:1")) == 2  # nothing left the lane

    key = (await stores.subscription_store.get("org:991825827", sub["id"])).index_key
    assert await herald.services.validation.validate(ValidationMessage(key=key, id=sub["id"])) is Status.ACTIVE
    # A worker that has not read it pending (the worker's copy lasts a few seconds) takes the waiting
    # head (a deferral, taken at once here), then the next entry.
    pipeline = Pipeline(herald, bus=pipeline.bus)
    await pipeline.push()
    assert [e["id"] for e in events_received(receiver, "o-new")] == ["case-0", "case-1"]
    assert events_received(receiver, "o-old") == []
    assert await pipeline.entries(sub["id"], "person:1") == []


async def test_the_sweep_reads_only_the_lanes_that_may_need_it(settings, stores):
    """Lanes are listed when appended to and forgotten once dropped: the sweep reads the listing and
    those lanes' heads (partition queries and point reads), never the whole table."""
    from uuid import uuid4

    from azure.data.tables.aio import TableServiceClient

    from shared.subscriptions.delivery import Delivery
    from shared.subscriptions.ordering import FANOUT_HORIZON
    from tests.support.counting import StorageCounter

    table = f"lanes{uuid4().hex[:12]}"
    counter = StorageCounter()
    reads: list[str] = []

    def request(pipeline_request) -> None:
        counter._request(pipeline_request)
        if pipeline_request.http_request.method == "GET":
            reads.append(pipeline_request.http_request.url)

    async with TableServiceClient.from_connection_string(
        settings.storage_connection_string, raw_request_hook=request, raw_response_hook=counter._response
    ) as tables:
        await tables.create_table(table)
        clock = FakeClock(datetime.now(UTC))
        store = TableLaneStore(tables, table=table)
        bus = RecordingBus()
        lanes = OrderedLanes(
            lanes=store,
            progress=TableFanoutMarks(stores.tables),
            event_log=stores.event_log,
            subscriptions=stores.subscription_store,
            bus=bus,
            clock=clock,
        )
        resource = f"urn:test:herald:{uuid4().hex[:12]}"

        def deliveries(subscription: str, count: int) -> list[Delivery]:
            return [Delivery("key", subscription, resource, seq, 0, lane=lane_of("person:1")) for seq in range(count)]

        # Lanes that were busy once and are done: appended, claimed, delivered.
        for n in range(8):
            [done] = deliveries(f"sub_done{n:02d}", 1)
            await lanes.kick(await lanes.append([done]))
            await lanes.settled([done], [])
        # Three lanes whose fan-out died between append and kick: entries waiting, nobody to kick them.
        for n in range(3):
            await lanes.append(deliveries(f"sub_wait{n:02d}", 5))
        bus.sent.clear()

        clock.advance(FANOUT_HORIZON + timedelta(minutes=1))
        assert (await lanes.sweep()).claimed == 3  # the waiting lanes go on; the done ones' heads are dropped
        assert (await lanes.sweep()).claimed == 0  # the done lanes' listings are forgotten
        clock.advance(STALE_AFTER + timedelta(minutes=1))
        counter.reset()
        reads.clear()
        swept = await lanes.sweep()
        await tables.delete_table(table)

    assert swept.resent == 3  # the claimed heads, never settled, are sent again
    assert all("PartitionKey" in url for url in reads), reads  # no table scan
    assert counter.entities_read == 3 + 3  # the three listings and their heads


async def test_a_head_the_sweep_sends_again_is_not_counted_as_a_retry_taken(
    client, issuer, receiver, resource, herald, stores
):
    sub = await ordered(client, issuer, stores, receiver, resource, "swept")
    receiver.behaviours["/swept"] = Behaviour(  # the first push of the event fails
        status=lambda _: 500 if len(events_received(receiver, "swept")) == 1 else 200
    )
    await publish(client, issuer.headers("events.publish"), [event(resource, "case-0", subject="person:1")])
    clock = FakeClock(datetime.now(UTC))
    pipeline = Pipeline(herald, clock=clock, store=OneSubscriptionsLanes(stores.tables, sub["id"]))
    stats = DeliveryStats(stores.delivery_stats, clock, flush_seconds=0)
    pipeline.worker = worker_with(herald, clock, pipeline.bus, (1,), lanes=pipeline.lanes, stats=stats)
    for message in await pipeline.inbound(resource):
        await pipeline.fanout.handle(message)
    await pipeline.push(rounds=1, to_rest=False)  # fails: its retry is queued
    [late] = pipeline.bus.take(RETRY_QUEUE)  # ... and is slow to come

    clock.advance(STALE_AFTER + timedelta(seconds=1))
    assert (await pipeline.lanes.sweep()).resent == 1
    await pipeline.push()  # the head, sent again, is delivered
    await pipeline._handle(late)  # then the retry comes after all: the same push again
    assert [e["id"] for e in events_received(receiver, "swept")] == ["case-0", "case-0", "case-0"]

    rows = await stores.delivery_stats.read(sub["id"], clock.now() - timedelta(hours=2), clock.now())
    queued_taken = [sum(counts[i] for row in rows for counts in row.retries.values()) for i in (0, 1)]
    assert queued_taken == [1, 1]  # taken once, from the retry queue: the sweep's copy is no retry taken
