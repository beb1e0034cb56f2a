"""Delivery statistics per subscription: what ``GET /api/v1/subscriptions/{id}/health`` reports.

The delivery log is sharded by outbound message, so a subscription's figures cannot be summed from it
cheaply. Instead each outbound worker process counts, per subscription and clock hour, the attempts it
judged (delivered, failed, a latency histogram per ten minutes), the deliveries it sent to the retry
queue and took from it, and the last success and failure. It writes them as one row per
(subscription, hour, process) holding that process's running totals: a replace, never a
read-modify-write, so processes never contend for a row. It writes at most every ``FLUSH_SECONDS``
after a change, and when it closes; a process that crashes loses what it counted in its last few
seconds. A health read sums the rows of the last 14 days (at most 336 per process), and charts the
last day of them by clock hour and the last hour by ten-minute slot.

Latency percentiles come from a log-scale histogram with four buckets per doubling: a percentile is
reported as its bucket's geometric middle, within 10 % (or 1 ms) of the exact value.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.clock import Clock
from shared.subscriptions.delivery import EXPIRED, REFUSED
from shared.subscriptions.model import Subscription
from shared.subscriptions.ports import Attempt, DeliveryStatsStore, HourStats, LastOutcome, StatsSlot

log = logging.getLogger(__name__)

FLUSH_SECONDS = 5.0  # a process writes its changed rows at most this often
SLOT_MINUTES = 10  # the resolution of the last-hour window
BUCKETS_PER_DOUBLING = 4
MAX_BUCKET = 96  # 2^24 ms: beyond any timeout
DEAD_LETTERS_COUNTED = 10_000  # a health read counts dead letters up to here, then says "at least"
HISTORY = timedelta(days=14)
HOUR = timedelta(hours=1)
SLOT = timedelta(minutes=SLOT_MINUTES)


def latency_bucket(latency_ms: int) -> int:
    """Bucket 0 holds answers under 1 ms; bucket i ≥ 1 holds [2^((i-1)/4), 2^(i/4)) ms."""
    if latency_ms < 1:
        return 0
    return min(MAX_BUCKET, math.floor(BUCKETS_PER_DOUBLING * math.log2(latency_ms)) + 1)


def bucket_latency(bucket: int) -> int:
    """A bucket's geometric middle, in whole ms: within 9.1 % of every latency in it (or 1 ms)."""
    if bucket <= 0:
        return 0
    return round(2 ** ((bucket - 0.5) / BUCKETS_PER_DOUBLING))


def percentile(histogram: Mapping[int, int], fraction: float) -> int | None:
    """The nearest-rank percentile of the histogram, as its bucket's middle; None when it is empty."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return bucket_latency(bucket)
    return bucket_latency(max(histogram))


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _slot_of(moment: datetime) -> int:
    return moment.astimezone(UTC).minute // SLOT_MINUTES


def _later(current: LastOutcome | None, candidate: LastOutcome) -> LastOutcome:
    return candidate if current is None or candidate.at >= current.at else current


class DeliveryStats:
    """This process's counts, flushed to the statistics store a few seconds after they change.

    ``flush_seconds`` 0 writes within each settle (tests that read the figures at once)."""

    def __init__(
        self,
        store: DeliveryStatsStore,
        clock: Clock,
        *,
        flush_seconds: float = FLUSH_SECONDS,
        instance: str | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._flush_seconds = flush_seconds
        self.instance = instance or uuid.uuid4().hex[:16]
        self._rows: dict[tuple[str, datetime], HourStats] = {}
        self._dirty: set[tuple[str, datetime]] = set()
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None

    def _row(self, subscription_id: str, moment: datetime) -> HourStats:
        now_hour = hour_of(self._clock.now())
        hour = hour_of(moment)
        if hour < now_hour - HOUR:
            # Its row may have left memory already; starting it again from nothing would replace the
            # stored totals with less. So a very late count goes to the current hour.
            hour = now_hour
        key = (subscription_id, hour)
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = HourStats(subscription_id, hour, self.instance)
        self._dirty.add(key)
        return row

    async def settled(
        self, attempts: Sequence[tuple[Attempt, bool]], queued: Iterable[tuple[str, datetime]] = ()
    ) -> None:
        """One settle: each attempt with whether it was delivered, and each delivery sent to the retry
        queue as (subscription id, first attempt)."""
        for attempt, delivered in attempts:
            if attempt.outcome == EXPIRED:
                continue  # dead without an attempt: a dead letter, not a failed attempt
            row = self._row(attempt.subscription_id, attempt.at)
            slot = row.slots.setdefault(_slot_of(attempt.at), StatsSlot())
            if delivered:
                slot.delivered += 1
            else:
                slot.failed += 1
            if attempt.outcome != REFUSED:  # a refused address was never asked: it has no latency
                bucket = latency_bucket(attempt.latency_ms)
                slot.latency[bucket] = slot.latency.get(bucket, 0) + 1
            outcome = LastOutcome(
                attempt.at,
                attempt.status_code,
                attempt.latency_ms,
                attempt.outcome,
                None if delivered else (attempt.error or _answered(attempt.status_code)),
            )
            if delivered:
                row.last_success = _later(row.last_success, outcome)
            else:
                row.last_failure = _later(row.last_failure, outcome)
        self._count_retries(queued, 0)
        await self._changed()

    async def taken(self, deliveries: Iterable[tuple[str, datetime]]) -> None:
        """Deliveries taken from the retry queue, as (subscription id, first attempt)."""
        if self._count_retries(deliveries, 1):
            await self._changed()

    def _count_retries(self, deliveries: Iterable[tuple[str, datetime]], column: int) -> bool:
        now = self._clock.now()
        counted = False
        for subscription_id, first_attempt in deliveries:
            counts = self._row(subscription_id, now).retries.setdefault(hour_of(first_attempt), [0, 0])
            counts[column] += 1
            counted = True
        return counted

    async def _changed(self) -> None:
        if not self._dirty:
            return
        if self._flush_seconds <= 0:
            await self.flush()
        elif self._timer is None or self._timer.done():
            self._timer = asyncio.create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        # The changes of the next few seconds, from any number of settles, go in the same writes.
        await asyncio.sleep(self._flush_seconds)
        try:
            await self.flush()
        except Exception:  # counted again at the next flush: the rows stay marked
            log.exception("delivery statistics could not be written; trying again")
            self._timer = None
            await asyncio.sleep(self._flush_seconds)
            await self._changed()

    async def flush(self) -> None:
        """Write every row changed since the last flush."""
        async with self._lock:
            keys, self._dirty = self._dirty, set()
            rows = [copy.deepcopy(self._rows[key]) for key in keys]
            try:
                if rows:
                    await self._store.write(rows)
            except BaseException:
                self._dirty |= keys
                raise
            # Rows of hours that take no more counts leave memory once written.
            oldest = hour_of(self._clock.now()) - HOUR
            for key in [k for k in self._rows if k[1] < oldest and k not in self._dirty]:
                del self._rows[key]

    async def close(self) -> None:
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        self._timer = None
        if self._dirty:
            await self.flush()


def _answered(status: int | None) -> str | None:
    return f"the endpoint answered {status}" if status is not None else None


# ------------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class WindowFigures:
    delivered: int
    failed: int
    success_rate: float | None  # delivered / attempts; None without attempts
    p50_ms: int | None
    p95_ms: int | None


@dataclass(frozen=True)
class SeriesPoint:
    """The figures of one bucket of a time series: a clock hour, or a ten-minute slot."""

    start: datetime
    figures: WindowFigures


@dataclass(frozen=True)
class HealthReport:
    subscription: Subscription
    as_of: datetime
    last_hour: WindowFigures
    last_day: WindowFigures
    last_14_days: WindowFigures
    retries_waiting: int
    dead_letters: int
    dead_letters_capped: bool  # at least ``dead_letters``: counting stopped there
    last_success: LastOutcome | None
    last_failure: LastOutcome | None
    # ``last_day`` by clock hour and ``last_hour`` by ten-minute slot, oldest first, every bucket present
    hourly: tuple[SeriesPoint, ...] = ()
    recent: tuple[SeriesPoint, ...] = ()

    @property
    def circuit(self) -> str:
        return "open" if self.subscription.circuit_opened_at is not None else "closed"


def history_start(now: datetime) -> datetime:
    """The first hour a health read looks at."""
    return hour_of(now) - HISTORY


def health_report(
    subscription: Subscription,
    rows: Sequence[HourStats],
    now: datetime,
    *,
    dead_letters: int,
    retry_horizon: timedelta,
) -> HealthReport:
    """The figures of every process's rows. Windows start at a bucket's start: the last hour at the
    ten-minute slot an hour ago (60 to 70 minutes), the last day at the clock hour 24 hours ago, the
    last 14 days at the clock hour 336 hours ago. The series split the last day by clock hour (25
    points, the current hour so far last) and the last hour by ten-minute slot (7 points); only the
    last day is charted, so the body stays a few KiB however often a console asks."""
    utc = now.astimezone(UTC).replace(second=0, microsecond=0)
    hour_start = utc - timedelta(minutes=utc.minute % SLOT_MINUTES + 60)
    day_start = hour_of(now) - timedelta(hours=24)
    windows: dict[str, list[StatsSlot]] = {"hour": [], "day": [], "all": []}
    by_hour: dict[datetime, list[StatsSlot]] = {}
    by_slot: dict[datetime, list[StatsSlot]] = {}
    last_success: LastOutcome | None = None
    last_failure: LastOutcome | None = None
    # Every retry of a delivery is queued and taken within its horizon of its first attempt, so the
    # counts of deliveries first attempted since then balance out but for those still waiting.
    retry_since = hour_of(now - retry_horizon) - HOUR
    waiting = 0
    for row in rows:
        for index, slot in row.slots.items():
            start = row.hour + timedelta(minutes=index * SLOT_MINUTES)
            windows["all"].append(slot)
            if row.hour >= day_start:
                windows["day"].append(slot)
                by_hour.setdefault(row.hour, []).append(slot)
            if start >= hour_start:
                windows["hour"].append(slot)
                by_slot.setdefault(start, []).append(slot)
        if row.last_success is not None:
            last_success = _later(last_success, row.last_success)
        if row.last_failure is not None:
            last_failure = _later(last_failure, row.last_failure)
        waiting += sum(queued - taken for first, (queued, taken) in row.retries.items() if first >= retry_since)
    return HealthReport(
        subscription=subscription,
        as_of=now,
        last_hour=_figures(windows["hour"]),
        last_day=_figures(windows["day"]),
        last_14_days=_figures(windows["all"]),
        retries_waiting=max(0, waiting),
        dead_letters=min(dead_letters, DEAD_LETTERS_COUNTED),
        dead_letters_capped=dead_letters > DEAD_LETTERS_COUNTED,
        last_success=last_success,
        last_failure=last_failure,
        hourly=_series(by_hour, day_start, hour_of(now), HOUR),
        recent=_series(by_slot, hour_start, utc - timedelta(minutes=utc.minute % SLOT_MINUTES), SLOT),
    )


def _series(
    buckets: Mapping[datetime, Sequence[StatsSlot]], first: datetime, last: datetime, step: timedelta
) -> tuple[SeriesPoint, ...]:
    """A point for every bucket from ``first`` to ``last``, empty ones too. A row stamped later than
    ``last`` (a process whose clock runs ahead) counts in the windows but is not charted."""
    points: list[SeriesPoint] = []
    start = first
    while start <= last:
        points.append(SeriesPoint(start, _figures(buckets.get(start, ()))))
        start += step
    return tuple(points)


def _figures(slots: Sequence[StatsSlot]) -> WindowFigures:
    delivered = sum(s.delivered for s in slots)
    failed = sum(s.failed for s in slots)
    histogram: dict[int, int] = {}
    for slot in slots:
        for bucket, count in slot.latency.items():
            histogram[bucket] = histogram.get(bucket, 0) + count
    attempts = delivered + failed
    return WindowFigures(
        delivered=delivered,
        failed=failed,
        success_rate=round(delivered / attempts, 4) if attempts else None,
        p50_ms=percentile(histogram, 0.50),
        p95_ms=percentile(histogram, 0.95),
    )
