"""The cache outbound, ordered lanes, backfill pushes and main units read subscriptions, backfills and
organisations through: fresh for the ttl, None kept like any value, misses loaded together, bounded."""

from __future__ import annotations

from shared.ttl_cache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_value_is_read_again_once_the_ttl_has_passed_and_none_is_a_value() -> None:
    clock, reads = Clock(), []

    async def load(key: str) -> str | None:
        reads.append(key)
        return None if key == "gone" else f"{key}@{clock.now}"

    cache: TtlCache[str, str | None] = TtlCache(5.0, clock=clock)
    assert await cache.get("a", load) == "a@100.0"
    assert await cache.get("gone", load) is None
    clock.now = 104.9
    assert (await cache.get("a", load), await cache.get("gone", load)) == ("a@100.0", None)
    assert reads == ["a", "gone"]
    clock.now = 105.0
    assert await cache.get("a", load) == "a@105.0"
    assert reads == ["a", "gone", "a"]


async def test_the_misses_of_many_keys_are_loaded_in_one_call() -> None:
    clock, calls = Clock(), []

    async def load(keys: list[int]) -> dict[int, int]:
        calls.append(keys)
        return {key: key * 10 for key in keys}

    cache: TtlCache[int, int] = TtlCache(5.0, clock=clock)
    assert await cache.get_many([1, 2], load) == {1: 10, 2: 20}
    assert await cache.get_many([2, 3, 3, 1, 4], load) == {1: 10, 2: 20, 3: 30, 4: 40}
    assert await cache.get_many([4, 1], load) == {1: 10, 4: 40}
    assert calls == [[1, 2], [3, 4]]


async def test_past_its_size_the_entries_stored_longest_ago_go_first() -> None:
    loaded: list[int] = []

    async def load(key: int) -> int:
        loaded.append(key)
        return key

    cache: TtlCache[int, int] = TtlCache(60.0, size=3, clock=Clock())
    for key in (1, 2, 3, 4):
        await cache.get(key, load)
    assert len(cache) == 3
    await cache.get(2, load)  # still there
    await cache.get(1, load)  # dropped for 4: read again
    assert loaded == [1, 2, 3, 4, 1]
