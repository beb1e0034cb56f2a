"""Scenario 7, query: p99 of a 100-event page from ``GET /api/v1/events`` with 10,000 and 1,000,000
events stored in the resource's log, beside a raw query of the same rows."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp

from bench.env import Result, azurite, devhost, new_table, p99_growth_result, percentiles_ms
from shared.adapters.table_event_log import EVENTS_TABLE, key_row_key, row_key
from shared.adapters.table_transactions import submit_transaction
from shared.adapters.tables import escape_key, int64
from shared.events.cursor import encode_cursor
from shared.events.log import Position

RESOURCE = "urn:bench:query"
PER_ROW = 97  # as many events as one append transaction packs into a row (97 keys + row + counter + outbox)


def _event(n: int) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": f"q{n}",
            "source": "urn:bench:query",
            "type": "no.bench.case.created",
            "resource": RESOURCE,
            "subject": f"person:{n % 1000:011d}",
            "time": "2026-01-01T00:00:00Z",
            "data": {"caseId": n, "note": "x" * 150},
        },
        separators=(",", ":"),
    ).encode()


class LogSeeder:
    """Writes the resource's log as Herald's append does: per row, 97 idempotency keys and one row
    packing 97 events, in one transaction; the counter last. (Written directly: Herald's own publish
    path runs at the rate the ingest scenario measures, which would make 1,000,000 events take long.)"""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.rows = 0
        self.seconds = 0.0

    async def grow_to(self, events: int) -> None:
        started = time.monotonic()
        pk = escape_key(RESOURCE)
        target_rows = events // PER_ROW
        todo = iter(range(self.rows + 1, target_rows + 1))
        now = datetime.now(UTC)
        # The new events' idempotency keys in key order, packed into rows in that order: Azurite keeps a
        # sorted index of row keys per table and moves its tail on every insert, so keys arriving in order
        # save about a third of the seeding time. Which events share a row does not matter to a reader.
        first, last = self.rows + 1, target_rows
        numbered = sorted(
            (hashlib.sha256(f"urn:bench:query|q{n}".encode()).hexdigest()[:32], n)
            for n in range(first * PER_ROW, (last + 1) * PER_ROW)
        )

        async def worker() -> None:
            for seq in todo:
                mine = numbered[(seq - first) * PER_ROW : (seq - first + 1) * PER_ROW]
                bodies = [_event(n) for _, n in mine]
                hashes = [h for h, _ in mine]
                ops: list[Any] = [
                    ("create", {"PartitionKey": pk, "RowKey": key_row_key(h), "h": h, "s": int64(seq)}) for h in hashes
                ]
                ops.append(
                    (
                        "create",
                        {
                            "PartitionKey": pk,
                            "RowKey": row_key(seq),
                            "t": now,
                            "n": PER_ROW,
                            "ks": "".join(hashes),
                            "d00": b"\n".join(bodies),
                        },
                    )
                )
                await submit_transaction(self.client, ops)

        await asyncio.gather(*(worker() for _ in range(8)))
        self.rows = target_rows
        await self.client.upsert_entity({"PartitionKey": pk, "RowKey": "~seq", "s": int64(self.rows)})
        self.seconds += time.monotonic() - started

    @property
    def events(self) -> int:
        return self.rows * PER_ROW


async def run(quick: bool) -> Result:
    sizes = [10_000, 30_000] if quick else [10_000, 1_000_000]
    samples = 50 if quick else 200
    results: list[dict[str, Any]] = []
    with azurite(in_memory=True) as store:
        service, client = await new_table(store.connection_string, EVENTS_TABLE)
        seeder = LogSeeder(client)
        rng = random.Random(7)
        with devhost(store) as host:
            host.open_resource(RESOURCE)
            headers = host.headers("events.read")
            async with aiohttp.ClientSession(headers=headers) as session:
                for size in sizes:
                    await seeder.grow_to(size)
                    herald: list[float] = []
                    rawq: list[float] = []
                    # Sampling is bounded per size (Azurite scans the whole table for every query).
                    budget = time.monotonic() + (1.5 if quick else 20)
                    for i in range(samples + 5):
                        if i >= 35 and time.monotonic() > budget:
                            break
                        seq = rng.randrange(1, seeder.rows - 2)
                        cursor = encode_cursor(RESOURCE, Position(seq, rng.randrange(PER_ROW)))
                        url = f"{host.url}/api/v1/events"
                        params = {"resource": RESOURCE, "size": "100", "after": cursor}
                        started = time.perf_counter()
                        async with session.get(url, params=params) as response:
                            page = await response.json()
                            if response.status != 200 or len(page) != 100:
                                raise RuntimeError(f"page answered {response.status}: {str(page)[:300]}")
                        if i >= 5:  # the first few warm up
                            herald.append(time.perf_counter() - started)
                        started = time.perf_counter()
                        query = "PartitionKey eq @pk and RowKey ge @start and RowKey lt @end"
                        parameters = {"pk": escape_key(RESOURCE), "start": row_key(seq), "end": "f"}
                        got = 0
                        async for _ in client.query_entities(query, parameters=parameters, results_per_page=2):
                            got += 1
                            if got == 2:
                                break
                        if i >= 5:
                            rawq.append(time.perf_counter() - started)
                    results.append(
                        {
                            "events": seeder.events,
                            **percentiles_ms("herald", herald),
                            **percentiles_ms("raw", rawq),
                            "seeded_after_s": round(seeder.seconds, 1),
                            "samples": len(herald),
                        }
                    )
                    print(f"bench: query at {seeder.events:,} events: {results[-1]}", flush=True)
        await service.close()
    small, large = results[0], results[-1]
    return p99_growth_result(
        "query",
        f"Query: p99 of a 100-event page, {large['events']:,} vs {small['events']:,} stored",
        figure=f"p99 {small['herald_p99_ms']:.0f} ms → {large['herald_p99_ms']:.0f} ms",
        baseline=f"raw 2-row query p99 {small['raw_p99_ms']:.0f} ms → {large['raw_p99_ms']:.0f} ms (x{large['raw_p99_ms'] / small['raw_p99_ms']:.1f})",
        sizes=results,
        samples=samples,
    )
