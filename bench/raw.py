"""The raw limits of this machine, measured with the same client libraries Herald uses."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
from azure.data.tables import EdmType, EntityProperty, UpdateMode

from bench.env import closed_loop, new_table
from shared.adapters.table_transactions import submit_transaction


def _int64(value: int) -> EntityProperty:
    return EntityProperty(value, EdmType.INT64)


async def table_inserts(
    connection: str,
    *,
    seconds: float,
    concurrency: int = 8,
    event_bytes: int = 300,
    table: str = "rawinserts",
    encoding: str = "library",
) -> dict[str, Any]:
    """Entities/s inserted in 100-operation transactions shaped like Herald's appends: a counter
    update, 97 small key entities, one row packing 97 payloads, one outbox entry; one partition per worker.

    ``encoding`` "library" commits with ``TableClient.submit_transaction``; "lean" with the
    ``$batch`` encoding Herald's adapters use (the same operations through the same client pipeline),
    which leaves Azurite, not the client, as the bound."""
    service, client = await new_table(connection, table)
    payload = os.urandom(event_bytes * 97 // 2).hex().encode()[: event_bytes * 97]
    inserted = 0
    transactions = 0
    stop = time.monotonic() + seconds

    async def worker(index: int) -> None:
        nonlocal inserted, transactions
        partition = f"urn:bench:raw:{index}"
        seq = 0
        while time.monotonic() < stop:
            seq += 1
            now = datetime.now(UTC)
            ops: list[Any] = [
                (
                    "upsert",
                    {"PartitionKey": partition, "RowKey": "~seq", "s": _int64(seq)},
                    {"mode": UpdateMode.REPLACE},
                )
            ]
            ops += [
                (
                    "create",
                    {"PartitionKey": partition, "RowKey": f"k{seq:08d}{i:024d}", "h": "x" * 64, "s": _int64(seq)},
                )
                for i in range(97)
            ]
            ops.append(
                (
                    "create",
                    {"PartitionKey": partition, "RowKey": f"e{seq:016d}", "t": now, "n": 97, "d00": payload},
                )
            )
            ops.append(("create", {"PartitionKey": partition, "RowKey": f"o{seq:016d}", "t": now}))
            if encoding == "lean":
                await submit_transaction(client, ops)
            else:
                await client.submit_transaction(ops)
            inserted += len(ops)
            transactions += 1

    started = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.monotonic() - started
    await service.close()
    return {
        "entities_per_s": inserted / elapsed,
        "transactions_per_s": transactions / elapsed,
        "concurrency": concurrency,
        "encoding": encoding,
        "seconds": elapsed,
    }


async def http_posts(url_for: Any, *, seconds: float, concurrency: int = 64, body: bytes) -> dict[str, Any]:
    """POST/s from aiohttp at ``concurrency`` to the same receivers Herald delivers to."""
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    headers = {"Content-Type": "application/cloudevents+json; charset=utf-8"}
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(client: int, n: int) -> None:
            async with session.post(url_for(client + n * concurrency), data=body, headers=headers) as response:
                await response.read()

        measured = await closed_loop(session, concurrency, seconds, post)
    return {
        "posts_per_s": measured["per_s"],
        "concurrency": concurrency,
        "p50_ms": measured["p50_ms"],
        "p99_ms": measured["p99_ms"],
        "seconds": measured["seconds"],
    }


async def partition_query(client: Any, partition_keys: list[str], *, samples: int) -> list[float]:
    """Seconds per raw single-partition query (the same filter Herald's matching sends)."""
    timings: list[float] = []
    for i in range(samples):
        key = partition_keys[i % len(partition_keys)]
        started = time.perf_counter()
        async for _ in client.query_entities("PartitionKey eq @pk and status eq 'active'", parameters={"pk": key}):
            pass
        timings.append(time.perf_counter() - started)
    return timings
