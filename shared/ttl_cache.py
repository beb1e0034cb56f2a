"""A small cache of values read from a store, each kept a while: so a hot path reads a store a few times
a minute, not once per message, and sees a change within the ttl. Bounded: past ``size`` entries the
ones stored longest ago go first. For one event loop (no locks); two concurrent misses of one key both
load it, and the later answer is kept."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, ttl_seconds: float, *, size: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._size = size
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()  # key -> (loaded at, value)

    async def get(self, key: K, load: Callable[[K], Awaitable[V]]) -> V:
        """The value of ``key``: the cached one while it is fresh, else ``load(key)``'s (None is a value too)."""
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and now - entry[0] < self._ttl:
            return entry[1]
        value = await load(key)
        self._store(key, now, value)
        return value

    async def get_many(self, keys: Iterable[K], load: Callable[[list[K]], Awaitable[Mapping[K, V]]]) -> dict[K, V]:
        """The values of ``keys``; those not fresh are loaded together, in one call of ``load``, which
        answers a value for each key it is given."""
        now = self._clock()
        found: dict[K, V] = {}
        missing: list[K] = []
        for key in dict.fromkeys(keys):
            entry = self._entries.get(key)
            if entry is not None and now - entry[0] < self._ttl:
                found[key] = entry[1]
            else:
                missing.append(key)
        if missing:
            loaded = await load(missing)
            for key in missing:
                found[key] = loaded[key]
                self._store(key, now, loaded[key])
        return found

    def discard(self, key: K) -> None:
        """Forgets ``key``: a change this process made is seen at once, not one ttl later."""
        self._entries.pop(key, None)

    def _store(self, key: K, at: float, value: V) -> None:
        # Stamped when the load began: what changed while it ran is seen one ttl later at the latest.
        self._entries[key] = (at, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
