"""Per-publisher token buckets: a publisher that floods is told when to come back (429 + Retry-After).

Buckets live in each process, so in Azure the limit applies per instance; the platform's scale
limits bound the rest. One event costs one token, so a batch counts as its events. A batch larger
than the bucket can never be taken, however long the publisher waits: that is refused apart
(:class:`BeyondBurst`), so the caller can answer that the request is too large, not to come back.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable


class BeyondBurst(ValueError):
    """More tokens asked for at once than the bucket holds when full."""

    def __init__(self, tokens: int, burst: float) -> None:
        self.tokens = tokens
        self.most = math.floor(burst)  # the most tokens one take can ever get
        super().__init__(f"{tokens} tokens asked for at once; at most {self.most} can be taken")


class TokenBuckets:
    def __init__(self, *, rate_per_second: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("the rate must be positive and the burst at least one")
        self._rate = rate_per_second
        self._burst = burst
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, tokens: int = 1) -> float | None:
        """Takes ``tokens`` and returns None, or returns the seconds until they would be there.
        Raises :class:`BeyondBurst` when they never would be (more than the burst)."""
        if tokens > self._burst:
            raise BeyondBurst(tokens, self._burst)
        now = self._clock()
        level, at = self._buckets.get(key, (self._burst, now))
        level = min(self._burst, level + (now - at) * self._rate)
        if level < tokens:
            self._buckets[key] = (level, now)
            return (tokens - level) / self._rate
        self._buckets[key] = (level - tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > 100_000:
            self._buckets.popitem(last=False)
        return None
