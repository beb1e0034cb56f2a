"""The delivery log packs one settle's attempts per subscription into one entity; read newest first,
page by page, it must give every attempt exactly once, in the order of one entity per attempt."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from shared.subscriptions.ports import Attempt, Settled


def attempt(subscription: str, n: int, at: datetime, *, error: str | None = None) -> Attempt:
    return Attempt(
        subscription_id=subscription,
        delivery_id=f"msg_{n:032x}",
        event_id=f"e{n}",
        attempt=1 + n % 3,
        at=at,
        status_code=None if error else 200,
        latency_ms=n % 97,
        outcome="retry" if error else "delivered",
        error=error,
        response_excerpt="ok ✓" if not error else None,
    )


async def test_pages_of_packed_attempts_give_each_attempt_once_newest_first(stores):
    log = stores.delivery_log
    rng = random.Random(7)
    subscription, other = f"sub_{uuid.uuid4().hex}", f"sub_{uuid.uuid4().hex}"
    start = datetime.now(UTC) - timedelta(minutes=5)
    recorded: list[Attempt] = []
    n = 0
    for settle in range(40):
        # Settles overlap in time, and one holds attempts further apart than an entity spans.
        base = start + timedelta(milliseconds=settle * 700)
        spread = 25_000 if settle == 13 else 3_000
        mine = []
        for _ in range(rng.randint(1, 12)):
            n += 1
            at = base + timedelta(microseconds=rng.randint(0, spread * 1000))
            mine.append(attempt(subscription, n, at, error="x" * rng.randint(0, 1500) if n % 5 == 0 else None))
        theirs = [attempt(other, 10_000 + settle, base)]
        recorded.extend(mine)
        await log.record(mine + theirs, Settled(uuid.uuid4().hex, base, [a.delivery_id for a in mine + theirs]))

    expected = sorted(recorded, key=lambda a: (-int(a.at.timestamp() * 1000), a.delivery_id, a.attempt))
    for size in (1, 7, 50, 1000):
        seen: list[Attempt] = []
        before = None
        while True:
            page, before = await log.attempts(subscription, size, before)
            assert len(page) <= size
            seen.extend(page)
            if before is None:
                break
        assert [(a.delivery_id, a.attempt) for a in seen] == [(a.delivery_id, a.attempt) for a in expected]
        assert seen == [Attempt(**{**a.__dict__, "error": (a.error or "")[:1024] or None}) for a in expected]
