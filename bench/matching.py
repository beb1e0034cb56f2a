"""Scenario 2, matching: p50/p99 time to find the subscriptions matching one event, with 1,000, 100,000
and 1,000,000 subscriptions indexed (100,000 on one hot resource, told apart by subject), beside a raw
single-partition query and a raw point read on the same table."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime
from typing import Any

from bench import raw
from bench.env import Result, azurite, new_table, p99_growth_result, percentile, percentiles_ms
from shared.adapters.table_subscription_store import INDEX_TABLE, TableSubscriptionStore
from shared.adapters.table_transactions import submit_transaction
from shared.adapters.tables import escape_key
from shared.subscriptions.model import index_key, index_keys_for_event

HOT = "urn:bench:hot"


def entity(resource: str, subject: str | None, n: int) -> dict[str, Any]:
    """An index entity as TableSubscriptionStore writes it."""
    key = index_key(resource, "s", subject) if subject else index_key(resource, "*", "")
    return {
        "PartitionKey": escape_key(key),
        "RowKey": f"sub_{n:032x}",
        "consumer": f"org:{n % 1000:09d}",
        "endpoint": f"https://hooks.example.com/{n % 1000}",
        "resource": resource,
        "source": None,
        "subject": subject,
        "alternativesubject": None,
        "type": None,
        "status": "active",
        "created": datetime(2026, 1, 1, tzinfo=UTC),
        "secret": "whsec_" + "A" * 43,
        "previousSecret": None,
        "previousExpires": None,
        "failingSince": None,
        "disabledReason": None,
        "allowedRate": None,
    }


class Seeder:
    """Grows the index: subject subscriptions on the hot resource (one partition each, single inserts),
    the rest 100 to a partition on other resources (one transaction each)."""

    def __init__(self, client: Any, hot_cap: int) -> None:
        self.client = client
        self.hot_cap = hot_cap
        self.hot = 0
        self.other = 0
        self.seconds = 0.0

    @property
    def size(self) -> int:
        return self.hot + self.other

    async def grow_to(self, n: int) -> None:
        started = time.monotonic()
        hot_target = min(self.hot_cap, n)
        other_target = n - hot_target
        hot_ids = iter(range(self.hot, hot_target))
        batches = iter(range(self.other // 100, (other_target + 99) // 100))

        async def hot_worker() -> None:
            for i in hot_ids:
                await self.client.create_entity(entity(HOT, f"person:{i:011d}", i))

        async def batch_worker() -> None:
            for b in batches:
                resource = f"urn:bench:r{b}"
                ops = [("create", entity(resource, None, 10**8 + b * 100 + i)) for i in range(100)]
                await submit_transaction(self.client, ops)

        await asyncio.gather(*(hot_worker() for _ in range(32)), *(batch_worker() for _ in range(8)))
        self.hot, self.other = hot_target, max(self.other, other_target)
        self.seconds += time.monotonic() - started


async def run(quick: bool) -> Result:
    sizes = [1_000, 3_000, 10_000] if quick else [1_000, 100_000, 1_000_000]
    hot_cap = 3_000 if quick else 100_000
    samples = 50 if quick else 300
    rows: list[dict[str, Any]] = []
    with azurite(in_memory=True) as store:
        service, client = await new_table(store.connection_string, INDEX_TABLE)
        subscriptions = TableSubscriptionStore(service)
        seeder = Seeder(client, hot_cap)
        rng = random.Random(8)
        for size in sizes:
            await seeder.grow_to(size)
            subjects = [f"person:{rng.randrange(seeder.hot):011d}" for _ in range(samples)]
            herald: list[float] = []
            for subject in subjects[:3]:  # warm-up
                await subscriptions.matching(index_keys_for_event({"resource": HOT, "subject": subject}))
            # Each size samples for at most ~20 s (Azurite's queries scan the whole table: slow at 1 M).
            budget = time.monotonic() + (3 if quick else 20)
            for n, subject in enumerate(subjects):
                if n >= 30 and time.monotonic() > budget:
                    subjects = subjects[:n]
                    break
                keys = index_keys_for_event({"resource": HOT, "subject": subject})
                started = time.perf_counter()
                found = await subscriptions.matching(keys)
                herald.append(time.perf_counter() - started)
                if len(found[index_key(HOT, "s", subject)]) != 1:
                    raise RuntimeError(f"expected one match for {subject}")
            partitions = [escape_key(index_key(HOT, "s", s)) for s in subjects]
            query = await raw.partition_query(client, partitions, samples=len(subjects))
            point: list[float] = []
            for i, subject in enumerate(subjects):
                started = time.perf_counter()
                await client.get_entity(partitions[i], f"sub_{int(subject.split(':')[1]):032x}")
                point.append(time.perf_counter() - started)
            rows.append(
                {
                    "subscriptions": seeder.size,
                    "hot_resource_subscriptions": seeder.hot,
                    **percentiles_ms("herald", herald),
                    **percentiles_ms("raw_query", query),
                    "raw_point_read_p99_ms": percentile(point, 99) * 1000,
                    "seeded_after_s": round(seeder.seconds, 1),
                    "samples": len(herald),
                }
            )
            print(f"bench: matching at {seeder.size:,}: {rows[-1]}", flush=True)
        await service.close()
    small, large = rows[0], rows[-1]
    raw_ratio = large["raw_query_p99_ms"] / small["raw_query_p99_ms"]
    return p99_growth_result(
        "matching",
        f"Matching: p99 per event at {large['subscriptions']:,} vs {small['subscriptions']:,} subscriptions",
        figure=(
            f"p50/p99 {small['herald_p50_ms']:.1f}/{small['herald_p99_ms']:.1f} ms at {small['subscriptions']:,}; "
            f"{large['herald_p50_ms']:.1f}/{large['herald_p99_ms']:.1f} ms at {large['subscriptions']:,}"
        ),
        baseline=(
            f"raw one-partition query p99 {small['raw_query_p99_ms']:.1f} → {large['raw_query_p99_ms']:.1f} ms "
            f"(x{raw_ratio:.1f}); raw point read p99 {large['raw_point_read_p99_ms']:.1f} ms"
        ),
        sizes=rows,
        samples=samples,
    )
