"""Per-orderer limits on notifications, shared by every instance through one counter per orderer.

Two limits, counted in notifications (what the order-time recipient lookup makes of an order:
one per contact point, an unreachable recipient one too), never in orders:

- per minute, as GOV.UK Notify's token bucket: the allowance refills at ``per_minute / 60`` a
  second up to one minute's worth. Herald's orders are batches, so an order larger than a minute's
  worth is admitted when the bucket is full and leaves it in debt: the orderer's next orders wait
  until it has refilled (an order of 10,000 at 3,000 a minute holds the next one back 3⅓ minutes).
- per UTC day, a plain count that starts again at midnight UTC. An order that alone exceeds it
  can never be admitted and is refused as too large, not asked to retry.

The counter is one Table Storage entity per orderer written under its ETag, so instances racing
for the same orderer serialise on it and none of them counts past a limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from shared.notifications.ports import OrderRefused


@dataclass(frozen=True)
class Usage:
    """An orderer's counter: the minute bucket's debt (notifications not yet refilled) at ``at``,
    and the notifications of the UTC day ``day``."""

    debt: float
    at: datetime
    day: str  # YYYY-MM-DD (UTC)
    day_count: int


class UsageStore(Protocol):
    async def get(self, orderer: str) -> tuple[Usage | None, str | None]:
        """The orderer's usage and its version (an ETag); (None, None) before its first order."""
        ...

    async def put(self, orderer: str, usage: Usage, version: str | None) -> bool:
        """Writes ``usage`` if ``version`` is still current (None: only if none exists yet);
        False when another instance wrote first."""
        ...


@dataclass(frozen=True)
class Limits:
    per_minute: int = 3_000
    per_day: int = 250_000


class LimitExceeded(OrderRefused):
    """Over a limit now: retry after ``retry_after``."""

    def __init__(self, window: str, limit: int, retry_after: timedelta) -> None:
        super().__init__(f"over the limit of {limit} notifications a {window}")
        self.window = window  # minute | day
        self.limit = limit
        self.retry_after = retry_after

    @property
    def retry_after_seconds(self) -> int:
        return max(1, math.ceil(self.retry_after.total_seconds()))


class TooLargeForLimit(OrderRefused):
    """The order alone makes more notifications than a day allows: retrying never helps."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"the order makes {count} notifications; at most {limit} a day are allowed")
        self.count = count
        self.limit = limit


def _day(at: datetime) -> str:
    return at.date().isoformat()


def admit(usage: Usage | None, count: int, now: datetime, limits: Limits) -> Usage:
    """The usage after admitting ``count`` notifications at ``now``, or raises why not."""
    if count > limits.per_day:
        raise TooLargeForLimit(count, limits.per_day)
    rate = limits.per_minute / 60.0  # refill per second
    debt = 0.0
    day_count = 0
    if usage is not None:
        debt = max(0.0, usage.debt - max(0.0, (now - usage.at).total_seconds()) * rate)
        day_count = usage.day_count if usage.day == _day(now) else 0
    refusals: list[LimitExceeded] = []
    if day_count + count > limits.per_day:
        midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=now.tzinfo)
        refusals.append(LimitExceeded("day", limits.per_day, midnight - now))
    # A full bucket admits any order (see the module's docstring); otherwise it must hold the order.
    if debt > 0 and debt + count > limits.per_minute:
        wait = (debt + count - limits.per_minute) if count <= limits.per_minute else debt
        refusals.append(LimitExceeded("minute", limits.per_minute, timedelta(seconds=wait / rate)))
    if refusals:
        raise max(refusals, key=lambda refusal: refusal.retry_after)
    return Usage(debt=debt + count, at=now, day=_day(now), day_count=day_count + count)


class OrderLimiter:
    def __init__(self, store: UsageStore, limits: Limits) -> None:
        self._store = store
        self.limits = limits

    async def take(self, orderer: str, count: int, now: datetime) -> None:
        """Counts ``count`` notifications for ``orderer``; raises LimitExceeded or TooLargeForLimit
        and counts nothing when they do not fit."""
        for _ in range(50):
            usage, version = await self._store.get(orderer)
            if await self._store.put(orderer, admit(usage, count, now, self.limits), version):
                return
        raise RuntimeError(f"the notification counter of {orderer} kept changing")

    async def give_back(self, orderer: str, count: int, now: datetime) -> None:
        """Undoes a ``take`` whose order was not made (its idempotency id had been used)."""
        for _ in range(50):
            usage, version = await self._store.get(orderer)
            if usage is None:
                return
            returned = Usage(
                debt=max(0.0, usage.debt - count),
                at=usage.at,
                day=usage.day,
                day_count=max(0, usage.day_count - count) if usage.day == _day(now) else usage.day_count,
            )
            if await self._store.put(orderer, returned, version):
                return
        raise RuntimeError(f"the notification counter of {orderer} kept changing")
