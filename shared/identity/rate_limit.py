"""Per-publisher token buckets shared by every instance: a publisher that floods is told when to
come back (429 + Retry-After), however many instances serve it.

One event costs one token, so a batch counts as its events. A batch larger than the bucket can
never be taken, however long the publisher waits: that is refused apart (:class:`BeyondBurst`), so
the caller can answer that the request is too large, not to come back.

A publisher's bucket is one stored entity (its level and when it was written), changed under its
ETag, so instances racing for it serialise and none takes tokens another already took. Asking it
for every request would add a storage round trip to every publish, so an instance leases tokens in
slices: one conditional write takes a slice (a tenth of a second's rate, or the request's own
events if more, never more than the bucket holds) and the instance admits requests from it without
storage until it runs out. Each instance holds at most one slice unspent, so N instances together
admit at most what one bucket allows plus N slices; an unspent slice lapses after a second, so an
instance that stops getting requests strands at most one slice, refusing the publisher that much early.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class BeyondBurst(ValueError):
    """More tokens asked for at once than the bucket holds when full."""

    def __init__(self, tokens: int, burst: float) -> None:
        self.tokens = tokens
        self.most = math.floor(burst)  # the most tokens one take can ever get
        super().__init__(f"{tokens} tokens asked for at once; at most {self.most} can be taken")


@dataclass(frozen=True)
class Bucket:
    """A publisher's shared bucket: ``level`` tokens at ``at`` (seconds since the epoch)."""

    level: float
    at: float


class BucketStore(Protocol):
    async def get(self, key: str) -> tuple[Bucket | None, str | None]:
        """The bucket and its version (an ETag); (None, None) before the publisher's first lease."""
        ...

    async def put(self, key: str, bucket: Bucket, version: str | None) -> str | None:
        """Writes ``bucket`` if ``version`` is still current (None: only if none exists yet) and
        returns its new version; None when another instance wrote first."""
        ...


@dataclass
class _Lease:
    """What this instance holds of one publisher's bucket."""

    tokens: float = 0.0
    until: float = 0.0  # the unspent tokens lapse then
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one claim at a time per publisher
    # The bucket as this instance last wrote it: the next claim writes over it without reading
    # first, and re-reads only when another instance wrote since.
    written: tuple[Bucket, str] | None = None


LEASE_SECONDS = 1.0
_SLICE_SECONDS = 0.1  # a slice is this much of the rate


class LeasedTokenBuckets:
    def __init__(
        self,
        store: BucketStore,
        *,
        rate_per_second: float,
        burst: float,
        slice_tokens: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("the rate must be positive and the burst at least one")
        self._store = store
        self._rate = rate_per_second
        self._burst = burst
        self._clock = clock  # wall time: instances compare the stored ``at`` with their own
        self.slice = slice_tokens or max(1, min(math.floor(burst), math.ceil(rate_per_second * _SLICE_SECONDS)))
        self._leases: OrderedDict[str, _Lease] = OrderedDict()

    async def take(self, key: str, tokens: int = 1) -> float | None:
        """Takes ``tokens`` and returns None, or returns the seconds until they would be there.
        Raises :class:`BeyondBurst` when they never would be (more than the burst)."""
        if tokens > self._burst:
            raise BeyondBurst(tokens, self._burst)
        lease = self._leases.get(key)
        if lease is None:
            lease = self._leases[key] = _Lease()
            while len(self._leases) > 100_000:
                self._leases.popitem(last=False)
        self._leases.move_to_end(key)
        if self._spend(lease, tokens):
            return None
        async with lease.lock:
            if self._spend(lease, tokens):  # a concurrent claim may have refilled the lease
                return None
            return await self._claim(key, lease, tokens)

    def _spend(self, lease: _Lease, tokens: int) -> bool:
        if self._clock() >= lease.until:
            lease.tokens = 0.0
        if lease.tokens < tokens:
            return False
        lease.tokens -= tokens
        return True

    async def _claim(self, key: str, lease: _Lease, tokens: int) -> float | None:
        """Leases what the request lacks (at least a slice) from the shared bucket."""
        for _ in range(50):
            bucket, version = lease.written or await self._store.get(key)
            now = self._clock()
            level, at = (self._burst, now) if bucket is None else (bucket.level, bucket.at)
            # Another instance's clock may run ahead; never refill for time that did not pass here.
            level = min(self._burst, level + max(0.0, now - at) * self._rate)
            need = tokens - lease.tokens
            if level < need:
                # Writes by others only lower the bucket, so a remembered level that is too low is too low.
                return (need - level) / self._rate
            grant = min(level, max(need, self.slice))
            taken = Bucket(level - grant, max(now, at))
            written = await self._store.put(key, taken, version)
            if written is None:
                lease.written = None
                continue
            lease.written = (taken, written)
            lease.tokens += grant - tokens
            lease.until = now + LEASE_SECONDS
            return None
        raise RuntimeError(f"the publish bucket of {key} kept changing")
