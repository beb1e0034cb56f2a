"""GET /api/v1/subscriptions/{id}/health: the figures after a known mix of outcomes, spread over the
last hour, the last day and the last 14 days, as outbound workers counted them."""

from __future__ import annotations

import asyncio
import collections
import math
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.composition.root import build_herald
from shared.events.model import format_time
from shared.subscriptions.messages import RETRY_QUEUE, DeliveryBatch
from shared.subscriptions.model import Filters, Secrets, Status, Subscription
from shared.subscriptions.ports import HourStats, StatsSlot
from shared.subscriptions.stats import (
    DeliveryStats,
    HealthReport,
    WindowFigures,
    bucket_latency,
    health_report,
    history_start,
    hour_of,
    latency_bucket,
    percentile,
)
from tests.subscriptions.conftest import active_subscription, worker_with
from tests.subscriptions.test_push import first_outbound
from tests.support.events import event, publish
from tests.support.fakes import FakeClock, RecordingBus
from tests.support.identities import random_org
from tests.support.receiver import Behaviour


def _within_precision(reported: int, exact: int) -> bool:
    return abs(reported - exact) <= max(1, 0.10 * exact)


def _nearest_rank(values: list[int], fraction: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def test_the_latency_histogram_keeps_percentiles_within_ten_percent():
    for latency in [0, 1, 2, 3, 7, 10, 99, 100, 101, 250, 999, 1000, 2047, 2048, 29_999, 30_000, 120_000]:
        assert _within_precision(bucket_latency(latency_bucket(latency)), latency), latency
    values = [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560]
    histogram: dict[int, int] = {}
    for value in values:
        histogram[latency_bucket(value)] = histogram.get(latency_bucket(value), 0) + 1
    assert _within_precision(percentile(histogram, 0.5) or 0, _nearest_rank(values, 0.5))
    assert _within_precision(percentile(histogram, 0.95) or 0, _nearest_rank(values, 0.95))
    assert percentile({}, 0.5) is None


def _report(rows: list[HourStats], now: datetime) -> HealthReport:
    subscription = Subscription(
        id="sub_" + "c" * 32,
        consumer="org:000000001",
        endpoint="https://example.org/hook",
        filters=Filters(resource="urn:altinn:resource:charts"),
        status=Status.ACTIVE,
        created=now - timedelta(days=30),
        secrets=Secrets("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    )
    return health_report(subscription, rows, now, dead_letters=0, retry_horizon=timedelta(hours=24))


def _histogram(*latencies: int) -> dict[int, int]:
    histogram: dict[int, int] = {}
    for latency in latencies:
        histogram[latency_bucket(latency)] = histogram.get(latency_bucket(latency), 0) + 1
    return histogram


def _total(figures: list[WindowFigures]) -> tuple[int, int]:
    return sum(f.delivered for f in figures), sum(f.failed for f in figures)


def test_the_series_chart_every_hour_and_slot_summed_across_processes():
    now = datetime(2026, 11, 26, 21, 17, 30, tzinfo=UTC)
    three_hours_ago = datetime(2026, 11, 26, 18, tzinfo=UTC)
    rows = [
        # Two processes in the same hour and slot: their counts add up and their histograms merge.
        HourStats("s", three_hours_ago, "p1", {2: StatsSlot(3, 1, _histogram(10, 10, 100, 100))}),
        HourStats("s", three_hours_ago, "p2", {2: StatsSlot(1, 0, _histogram(1000))}),
        # 20:00 is charted by the hour only; 20:50 and 21:10 are in the last hour's slots too.
        HourStats("s", datetime(2026, 11, 26, 20, tzinfo=UTC), "p1", {0: StatsSlot(0, 2), 5: StatsSlot(4, 0)}),
        HourStats("s", datetime(2026, 11, 26, 21, tzinfo=UTC), "p2", {1: StatsSlot(1, 1, _histogram(50, 60))}),
        # Two days ago: in the 14 days, not in the series.
        HourStats("s", datetime(2026, 11, 24, 12, tzinfo=UTC), "p1", {0: StatsSlot(7, 0)}),
    ]

    report = _report(rows, now)

    hours = [p.start for p in report.hourly]
    assert hours == [datetime(2026, 11, 25, 21, tzinfo=UTC) + timedelta(hours=n) for n in range(25)]
    by_hour = {p.start.hour: p.figures for p in report.hourly if p.start.day == 26}
    merged = by_hour[18]
    assert (merged.delivered, merged.failed, merged.success_rate) == (4, 1, 0.8)
    # Percentiles of the merged histogram: p95 is the second process's 1,000 ms, which neither
    # process's own histogram (nor an average of their percentiles) would give.
    assert merged.p50_ms == bucket_latency(latency_bucket(100))
    assert merged.p95_ms == bucket_latency(latency_bucket(1000))
    assert (by_hour[20].delivered, by_hour[20].failed) == (4, 2)
    assert (by_hour[21].delivered, by_hour[21].failed, by_hour[21].success_rate) == (1, 1, 0.5)
    empty = WindowFigures(0, 0, None, None, None)
    assert [p.figures for p in report.hourly if p.start.hour not in (18, 20, 21) or p.start.day == 25] == [empty] * 22
    assert _total([p.figures for p in report.hourly]) == (report.last_day.delivered, report.last_day.failed)

    slots = [p.start for p in report.recent]
    assert slots == [datetime(2026, 11, 26, 20, 10, tzinfo=UTC) + timedelta(minutes=10 * n) for n in range(7)]
    by_slot = {p.start.strftime("%H:%M"): p.figures for p in report.recent}
    assert (by_slot["20:50"].delivered, by_slot["20:50"].failed, by_slot["20:50"].p50_ms) == (4, 0, None)
    assert (by_slot["21:10"].delivered, by_slot["21:10"].failed) == (1, 1)
    assert by_slot["21:10"].p95_ms == bucket_latency(latency_bucket(60))
    assert [by_slot[k] for k in ("20:10", "20:20", "20:30", "20:40", "21:00")] == [empty] * 5
    assert _total([p.figures for p in report.recent]) == (report.last_hour.delivered, report.last_hour.failed)


def test_without_rows_the_series_are_present_and_empty():
    now = datetime(2026, 11, 26, 22, 0, tzinfo=timezone(timedelta(hours=1)))  # 21:00 UTC
    report = _report([], now)
    empty = WindowFigures(0, 0, None, None, None)
    assert [p.figures for p in report.hourly] == [empty] * 25
    assert [p.figures for p in report.recent] == [empty] * 7
    assert report.hourly[-1].start == datetime(2026, 11, 26, 21, tzinfo=UTC)
    assert report.recent[0].start == datetime(2026, 11, 26, 20, tzinfo=UTC)
    assert report.recent[-1].start == datetime(2026, 11, 26, 21, tzinfo=UTC)


async def test_health_reports_counts_latency_retries_dead_letters_and_last_outcomes(
    client, issuer, receiver, resource, stores, herald
):
    consumer = random_org()
    headers = issuer.headers("events.subscribe", sub=consumer)
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("mixed"), "resourceFilter": resource}, sub=consumer
    )
    ids = [f"e{n}" for n in range(1, 9)]
    await publish(client, issuer.headers("events.publish"), [event(resource, i) for i in ids])
    batch = (await first_outbound(stores, resource)).deliveries()
    pending = dict(zip(ids, sorted(batch, key=lambda d: (d.seq, d.index)), strict=True))
    bus = RecordingBus()

    async def push(at: datetime, event_id: str, status: int, delay: float = 0.0) -> None:
        """One delivery at a time, each by a worker of its own (as many processes would); a retry
        it queues is what the next push of that event takes."""
        receiver.behaviours["/mixed"] = Behaviour(status=status, delay=delay)
        clock = FakeClock(at)
        worker = worker_with(herald, clock, bus, stats=DeliveryStats(stores.delivery_stats, clock, flush_seconds=0))
        await worker.handle([pending.pop(event_id)])
        for message in bus.take(RETRY_QUEUE):
            [pending[event_id]] = DeliveryBatch.model_validate_json(message.body).deliveries()

    now = datetime.now(UTC)
    t1, t2 = now - timedelta(hours=25, minutes=30), now - timedelta(hours=3)
    t3, t4 = now - timedelta(minutes=30), now - timedelta(minutes=5)
    # 25.5 hours ago: three delivered, one failed (and queued for a retry)
    await push(t1, "e1", 200, 0.02)
    await push(t1, "e2", 200, 0.04)
    await push(t1, "e3", 500)
    await push(t1, "e4", 200, 0.08)
    # 3 hours ago: two delivered, one failed (queued)
    await push(t2, "e5", 200, 0.01)
    await push(t2, "e6", 503)
    await push(t2, "e7", 200, 0.16)
    # 30 minutes ago: e3's retry fails past its 24 h horizon and is dead-lettered; e6's fails and waits again
    await push(t3, "e3", 500)
    await push(t3, "e6", 503)
    # 5 minutes ago: one delivered
    await push(t4, "e8", 200, 0.32)
    assert sorted(pending) == ["e6"]

    response = await client.get(f"/api/v1/subscriptions/{sub['id']}/health", headers=headers)

    assert response.status_code == 200, response.text
    health = response.json()
    assert health["subscriptionId"] == sub["id"] and health["status"] == "active"
    counts = {w: (health[w]["delivered"], health[w]["failed"]) for w in ("lastHour", "lastDay", "last14Days")}
    assert counts == {"lastHour": (1, 2), "lastDay": (3, 3), "last14Days": (6, 4)}
    assert health["lastHour"]["successRate"] == round(1 / 3, 4)
    assert health["last14Days"]["successRate"] == 0.6
    assert health["retriesWaiting"] == 1  # e6
    assert health["deadLetters"] == 1 and health["deadLettersCapped"] is False  # e3
    assert health["lastSuccess"]["at"] == t4.isoformat() and health["lastSuccess"]["statusCode"] == 200
    assert health["lastFailure"]["at"] == t3.isoformat() and health["lastFailure"]["statusCode"] in (500, 503)
    assert health["lastFailure"]["error"] in ("the endpoint answered 500", "the endpoint answered 503")
    assert health["circuit"] == {"state": "closed", "openedAt": None}

    # The percentiles against the exact ones of the same attempts, as the delivery log has them.
    attempts = (await client.get(f"/api/v1/subscriptions/{sub['id']}/deliveries", headers=headers)).json()
    latencies = [a["latencyMs"] for a in attempts["deliveries"]]
    assert len(latencies) == 10
    for fraction, name in ((0.5, "p50LatencyMs"), (0.95, "p95LatencyMs")):
        assert _within_precision(health["last14Days"][name], _nearest_rank(latencies, fraction)), (name, latencies)
    recent = [a["latencyMs"] for a in attempts["deliveries"] if datetime.fromisoformat(a["at"]) >= t3]
    assert _within_precision(health["lastHour"]["p95LatencyMs"], _nearest_rank(recent, 0.95))
    assert health["lastHour"]["p95LatencyMs"] >= 320 * 0.9

    # The series to chart: every clock hour of the last day and every slot of the last hour, oldest
    # first, each with the attempts made in it (t1 is older than the day).
    def slot(at: datetime) -> datetime:
        return at.astimezone(UTC).replace(minute=at.minute // 10 * 10, second=0, microsecond=0)

    made = [(t2, "delivered"), (t2, "failed"), (t2, "delivered"), (t3, "failed"), (t3, "failed"), (t4, "delivered")]
    for series, window, points, bucket in (
        ("hourly", "lastDay", 25, hour_of),
        ("recent", "lastHour", 7, slot),
    ):
        assert all(p["start"].endswith("Z") for p in health[series]), series  # as every other time
        starts = [datetime.fromisoformat(p["start"]) for p in health[series]]
        assert len(starts) == points and starts == sorted(set(starts)), series
        assert {s - starts[0] for s in starts} == {(starts[1] - starts[0]) * n for n in range(points)}, series
        expected = collections.Counter((format_time(bucket(at)), kind) for at, kind in made if bucket(at) >= starts[0])
        charted = collections.Counter(
            {(p["start"], kind): p[kind] for p in health[series] for kind in ("delivered", "failed") if p[kind]}
        )
        assert charted == expected, series
        assert sum(p["delivered"] for p in health[series]) == health[window]["delivered"]
        assert sum(p["failed"] for p in health[series]) == health[window]["failed"]
        for point in health[series]:
            if not point["delivered"] and not point["failed"]:
                assert point["successRate"] is None and point["p50LatencyMs"] is point["p95LatencyMs"] is None
    [e8] = [a["latencyMs"] for a in attempts["deliveries"] if a["eventId"] == "e8"]
    [t4_slot] = [p for p in health["recent"] if p["start"] == format_time(slot(t4))]
    assert t4_slot["successRate"] == 1.0 and _within_precision(t4_slot["p95LatencyMs"], e8)


async def test_a_subscription_without_deliveries_reports_empty_windows(client, issuer, receiver, resource, stores):
    consumer = random_org()
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("quiet"), "resourceFilter": resource}, sub=consumer
    )
    health = (
        await client.get(
            f"/api/v1/subscriptions/{sub['id']}/health", headers=issuer.headers("events.subscribe", sub=consumer)
        )
    ).json()
    empty = {"delivered": 0, "failed": 0, "successRate": None, "p50LatencyMs": None, "p95LatencyMs": None}
    assert health["lastHour"] == health["lastDay"] == health["last14Days"] == empty
    assert [{k: v for k, v in p.items() if k != "start"} for p in health["hourly"]] == [empty] * 25
    assert [{k: v for k, v in p.items() if k != "start"} for p in health["recent"]] == [empty] * 7
    assert health["retriesWaiting"] == 0 and health["deadLetters"] == 0
    assert health["lastSuccess"] is None and health["lastFailure"] is None


async def test_counts_are_written_a_few_seconds_after_a_settle_and_when_herald_closes(
    client, issuer, receiver, resource, stores, herald
):
    """A worker writes its counts after its flush interval, or when it is closed (the host stops)."""
    consumer = random_org()
    headers = issuer.headers("events.subscribe", sub=consumer)
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("later"), "resourceFilter": resource}, sub=consumer
    )
    await publish(client, issuer.headers("events.publish"), [event(resource, "soon"), event(resource, "at-close")])
    first, second = sorted((await first_outbound(stores, resource)).deliveries(), key=lambda d: (d.seq, d.index))
    clock = FakeClock(datetime.now(UTC))

    async def delivered() -> int:
        figures = (await client.get(f"/api/v1/subscriptions/{sub['id']}/health", headers=headers)).json()
        return int(figures["lastHour"]["delivered"])

    soon = worker_with(
        herald, clock, RecordingBus(), stats=DeliveryStats(stores.delivery_stats, clock, flush_seconds=1.5)
    )
    await soon.handle([first])
    assert await delivered() == 0
    for _ in range(50):
        if await delivered() == 1:
            break
        await asyncio.sleep(0.1)
    assert await delivered() == 1

    closing = worker_with(
        herald, clock, RecordingBus(), stats=DeliveryStats(stores.delivery_stats, clock, flush_seconds=600)
    )
    await closing.handle([second])
    assert await delivered() == 1
    await closing.close()
    assert await delivered() == 2


async def test_the_nightly_retention_drops_the_figures_with_the_delivery_log(services, stores):
    """The delivery log's retention timer drops the statistics' day tables past the same 14 days."""
    old = hour_of(datetime.now(UTC) - timedelta(days=20))
    kept = hour_of(datetime.now(UTC) - timedelta(days=13))
    rows = [HourStats("sub_" + "e" * 32, hour, "retention-test", {0: StatsSlot(delivered=1)}) for hour in (old, kept)]
    await stores.delivery_stats.write(rows)

    dropped = await services.subscriptions.expire_delivery_log()

    assert dropped >= 1
    names = {t.name async for t in stores.tables.list_tables()}
    assert f"deliverystats{old:%Y%m%d}" not in names and f"deliverystats{kept:%Y%m%d}" in names
    [row] = await stores.delivery_stats.read("sub_" + "e" * 32, old, datetime.now(UTC))
    assert row.hour == kept and row.slots[0].delivered == 1


class DiesBeforeRecording:
    """The delivery log of a process that dies before its first settle is written (storage unreachable):
    the message comes again, with nothing of it settled."""

    def __init__(self, log) -> None:
        self._log = log
        self.died = False

    async def record(self, attempts, settled) -> None:
        if not self.died:
            self.died = True
            raise ConnectionError("the process died before the settle was recorded")
        await self._log.record(attempts, settled)

    def __getattr__(self, name: str):
        return getattr(self._log, name)


async def test_a_retry_whose_message_comes_again_is_taken_once(client, issuer, receiver, resource, stores, herald):
    consumer = random_org()
    sub = await active_subscription(
        client, issuer, stores, {"endPoint": receiver.url("again"), "resourceFilter": resource}, sub=consumer
    )
    receiver.behaviours["/again"] = Behaviour(status=500)
    await publish(client, issuer.headers("events.publish"), [event(resource, "a1"), event(resource, "a2")])
    batch = (await first_outbound(stores, resource)).deliveries()
    bus = RecordingBus()

    def process(clock: FakeClock, **options):
        """An outbound process of its own, counting for the health figures as it settles."""
        return worker_with(
            herald, clock, bus, stats=DeliveryStats(stores.delivery_stats, clock, flush_seconds=0), **options
        )

    clock = FakeClock(datetime.now(UTC) - timedelta(minutes=5))
    await process(clock).handle(batch)  # both fail: two retries wait
    retries = [d for m in bus.take(RETRY_QUEUE) for d in DeliveryBatch.model_validate_json(m.body).deliveries()]
    first = min(retries, key=lambda d: (d.seq, d.index))
    clock.advance(timedelta(seconds=30))
    crashing = process(clock, delivery_log=DiesBeforeRecording(stores.delivery_log))
    with pytest.raises(ConnectionError):
        await crashing.handle([first], message_id="taken-once")
    await process(clock).handle([first], message_id="taken-once", redelivered=True)  # fails again: waits

    health = (
        await client.get(
            f"/api/v1/subscriptions/{sub['id']}/health", headers=issuer.headers("events.subscribe", sub=consumer)
        )
    ).json()
    assert health["retriesWaiting"] == 2  # a1's retry, taken once and queued again, and a2's


async def test_the_figures_cover_14_days_however_briefly_the_delivery_log_is_kept(settings):
    """``last14Days`` needs 14 days of figures: a shorter HERALD_DELIVERY_LOG_DAYS keeps them all the same."""
    herald = build_herald(replace(settings, delivery_log_days=3))
    try:
        subscription_id = "sub_" + uuid.uuid4().hex
        ten_days_ago = hour_of(datetime.now(UTC) - timedelta(days=10))
        await herald.stores.delivery_stats.write(
            [HourStats(subscription_id, ten_days_ago, "short-log", {0: StatsSlot(delivered=1)})]
        )
        await herald.stores.delivery_stats.expire(datetime.now(UTC))
        [row] = await herald.stores.delivery_stats.read(
            subscription_id, history_start(datetime.now(UTC)), datetime.now(UTC)
        )
        assert row.hour == ten_days_ago and row.slots[0].delivered == 1
    finally:
        await herald.close()
