"""A webhook down for hours: every event arrives once it recovers, on the retry schedule; an endpoint
down past the 24-hour horizon has everything dead-lettered, and replay delivers all of it.

The OutboundWorker is driven with a controllable clock (also the endpoint guard's clock, so the
circuit breaker and probation defer in the same simulated time) and a recording bus whose delayed
retry messages are released when the clock reaches them.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from datetime import datetime, timedelta

from shared.adapters.table_fanout_marks import TableFanoutMarks
from shared.subscriptions.endpoint_guard import EndpointGuard
from shared.subscriptions.fanout import Fanout
from shared.subscriptions.messages import OUTBOUND_QUEUE, RETRY_QUEUE, DeliveryBatch
from shared.subscriptions.outbound import OutboundWorker
from tests.reliability.figures import record_figures
from tests.subscriptions.conftest import active_subscription, worker_with
from tests.support.events import event, publish
from tests.support.fakes import FakeClock, RecordingBus
from tests.support.pipeline import drain
from tests.support.receiver import Behaviour

SCHEDULE = (10, 30, 60, 300, 600, 1800, 3600, 10800, 21600, 43200)
EVENTS = 40


def make_worker(herald, clock: FakeClock, bus: RecordingBus) -> OutboundWorker:
    # Production guard thresholds, on simulated time.
    return worker_with(herald, clock, bus, SCHEDULE, guard=EndpointGuard(clock=lambda: clock.now().timestamp()))


async def outbound_batches(stores, resource: str) -> list[DeliveryBatch]:
    bus = RecordingBus()
    rows = await stores.event_log.rows_from(resource, 0, 1000)
    fanout = Fanout(stores.subscription_store, TableFanoutMarks(stores.tables), bus, rows=stores.inbound)
    await fanout.fan_out(resource, rows)
    return [DeliveryBatch.model_validate_json(m.body) for m in bus.take(OUTBOUND_QUEUE)]


async def run_clock(worker, bus: RecordingBus, clock: FakeClock, batches, *, max_rounds: int = 5000) -> int:
    """Handle messages in due order, jumping the clock to each; returns the rounds run."""
    pending: list[tuple[datetime, list]] = [(clock.now(), b.deliveries()) for b in batches]
    rounds = 0
    while pending:
        rounds += 1
        assert rounds <= max_rounds, "the retry loop did not settle"
        pending.sort(key=lambda item: item[0])
        due, deliveries = pending.pop(0)
        clock.set(max(clock.now(), due))
        await worker.handle(deliveries)
        for message in bus.take(RETRY_QUEUE):
            assert message.deliver_at is not None
            pending.append((message.deliver_at, DeliveryBatch.model_validate_json(message.body).deliveries()))
        assert not bus.take(OUTBOUND_QUEUE)
    return rounds


class Outage:
    """The endpoint's answers as a function of simulated time; records each POST's simulated moment."""

    def __init__(self, clock: FakeClock, until: datetime | None, status: int = 503) -> None:
        self.clock, self.until, self.status = clock, until, status
        self.moments: list[datetime] = []

    def __call__(self, _count: int) -> int:
        now = self.clock.now()
        self.moments.append(now)
        return self.status if self.until is None or now < self.until else 200


async def test_endpoint_down_two_hours_gets_everything_on_the_schedule(
    client, issuer, receiver, resource, services, stores, herald
):
    url = receiver.behave("down", Behaviour(status=200))
    await active_subscription(client, issuer, stores, {"endPoint": url, "resourceFilter": resource})
    validation_posts = len(receiver.posts("down"))
    ids = [f"o{i}" for i in range(EVENTS)]
    assert (
        await publish(client, issuer.headers("events.publish"), [event(resource, i) for i in ids])
    ).status_code == 202

    clock, bus = FakeClock(), RecordingBus()
    start = clock.now()
    outage = Outage(clock, until=start + timedelta(hours=2))
    receiver.behaviours["/down"] = Behaviour(status=outage)
    rounds = await run_clock(make_worker(herald, clock, bus), bus, clock, await outbound_batches(stores, resource))

    posts = receiver.posts("down")[validation_posts:]
    assert len(posts) == len(outage.moments)
    attempts: dict[str, list[datetime]] = defaultdict(list)
    delivered: dict[str, int] = defaultdict(int)
    for post, moment in zip(posts, outage.moments, strict=True):
        event_id = json.loads(post.body)["id"]
        attempts[event_id].append(moment)
        delivered[event_id] += moment >= outage.until
    assert sorted(delivered) == sorted(ids)
    assert all(delivered[i] == 1 for i in ids), "each event delivered exactly once after recovery"
    for event_id, moments in attempts.items():
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(moments)]
        # Each retry waits at least its schedule step (a breaker or probation deferral only adds time).
        assert all(gap >= step for gap, step in zip(gaps, SCHEDULE, strict=False)), (event_id, gaps)
        # Delivered on its first attempt after the recovery: no attempt wasted once the endpoint is back.
        assert moments[-1] >= outage.until and all(m < outage.until for m in moments[:-1])
    last = max(m[-1] for m in attempts.values())
    # The breaker defers instead of attempting, so nothing waits past the schedule step after 6400 s.
    assert last - start <= timedelta(seconds=sum(SCHEDULE[:8]) + 600)
    record_figures(
        "push-outage",
        {
            "events": EVENTS,
            "outage_hours": 2,
            "attempts": len(posts),
            "attempts_per_event_max": max(len(m) for m in attempts.values()),
            "attempts_per_event_min": min(len(m) for m in attempts.values()),
            "delivered_after_recovery": sum(delivered.values()),
            "lost": EVENTS - len(delivered),
            "duplicated": sum(n - 1 for n in delivered.values() if n > 1),
            "all_delivered_by_simulated": str(last - start),
            "worker_rounds": rounds,
        },
    )


async def test_endpoint_down_past_the_horizon_is_dead_lettered_then_replayed(
    client, issuer, receiver, resource, services, stores, herald
):
    url = receiver.behave("dead", Behaviour(status=200))
    sub = await active_subscription(client, issuer, stores, {"endPoint": url, "resourceFilter": resource})
    ids = [f"d{i}" for i in range(EVENTS)]
    assert (
        await publish(client, issuer.headers("events.publish"), [event(resource, i) for i in ids])
    ).status_code == 202

    clock, bus = FakeClock(), RecordingBus()
    outage = Outage(clock, until=None, status=500)
    receiver.behaviours["/dead"] = Behaviour(status=outage)
    await run_clock(make_worker(herald, clock, bus), bus, clock, await outbound_batches(stores, resource))
    # Every delivery is dead once a trial after its 24 h horizon fails; behind an open circuit the
    # trials go one per breaker window (at most 10 min), so the last one waits for its turn.
    simulated = clock.now() - FakeClock().now()
    assert simulated <= timedelta(hours=24) + EVENTS * timedelta(minutes=10) + timedelta(hours=1), simulated

    headers = issuer.headers("events.subscribe")
    letters = (await client.get(f"/api/v1/subscriptions/{sub['id']}/deadletters", headers=headers)).json()
    assert letters["count"] == EVENTS
    assert sorted(letter["eventId"] for letter in letters["deadLetters"]) == sorted(ids)

    receiver.behaviours["/dead"] = Behaviour(status=200)
    before = len(receiver.posts("dead"))
    replay = await client.post(f"/api/v1/subscriptions/{sub['id']}/replay", headers=headers)
    assert replay.status_code == 202 and replay.json() == {"replayed": EVENTS}
    await drain(stores, (OUTBOUND_QUEUE, RETRY_QUEUE))
    replayed = [json.loads(p.body)["id"] for p in receiver.posts("dead")[before:]]
    assert sorted(replayed) == sorted(ids)
    assert (await client.get(f"/api/v1/subscriptions/{sub['id']}/deadletters", headers=headers)).json()["count"] == 0
    record_figures(
        "push-deadletter",
        {
            "events": EVENTS,
            "attempts_before_dead": len(outage.moments),
            "dead_lettered_after_simulated": str(simulated),
            "dead_lettered": letters["count"],
            "replayed": len(replayed),
            "lost": EVENTS - len(set(replayed)),
            "duplicated": len(replayed) - len(set(replayed)),
        },
    )
