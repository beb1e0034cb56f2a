"""Per-publisher token buckets: a publisher that floods is told when to come back (429 + Retry-After).

Buckets live in each process, so in Azure the limit applies per instance; the platform's scale
limits bound the rest. One event costs one token, so a batch counts as its events.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBuckets:
    def __init__(self, *, rate_per_second: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("the rate must be positive and the burst at least one")
        self._rate = rate_per_second
        self._burst = burst
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, tokens: int = 1) -> float | None:
        """Takes ``tokens`` and returns None, or returns the seconds until they would be there."""
        now = self._clock()
        level, at = self._buckets.get(key, (self._burst, now))
        level = min(self._burst, level + (now - at) * self._rate)
        if tokens > self._burst:
            return math.inf
        if level < tokens:
            self._buckets[key] = (level, now)
            return (tokens - level) / self._rate
        self._buckets[key] = (level - tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > 100_000:
            self._buckets.popitem(last=False)
        return None
