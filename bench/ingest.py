"""Scenario 1, ingest: sustained events/s through ``POST /api/v1/events`` (batch mode) until stored,
beside the raw rate of Herald-shaped table-transaction inserts into the same Azurite."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from bench import raw
from bench.env import Result, azurite, devhost, percentile, profiled

BATCH = "application/cloudevents-batch+json"


def event_template(resource: str, size: int = 300) -> bytes:
    """One structured CloudEvent of about ``size`` bytes, with ``%d`` where its id goes."""
    filler = "x" * max(0, size - 200)
    document = {
        "specversion": "1.0",
        "id": "ID",
        "source": "urn:bench:ingest",
        "type": "no.bench.case.created",
        "resource": resource,
        "subject": "person:12345678901",
        "data": {"f": filler},
    }
    return json.dumps(document, separators=(",", ":")).replace('"ID"', '"%d"').encode()


def batch_body(template: bytes, first: int, count: int) -> bytes:
    return b"[" + b",".join(template % (first + i) for i in range(count)) + b"]"


async def publish_for(
    url: str,
    headers: dict[str, str],
    *,
    resources: list[str],
    publishers_per_resource: int,
    batch: int,
    seconds: float,
    first_lane: int = 0,
) -> dict[str, Any]:
    stored = 0
    requests = 0
    latencies: list[float] = []
    stop = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=len(resources) * publishers_per_resource)
    async with aiohttp.ClientSession(connector=connector, headers={**headers, "Content-Type": BATCH}) as session:

        async def publisher(resource: str, lane: int) -> None:
            nonlocal stored, requests
            template = event_template(resource)
            n = lane * 10**9
            while time.monotonic() < stop:
                body = batch_body(template, n, batch)
                n += batch
                started = time.perf_counter()
                async with session.post(f"{url}/api/v1/events", data=body) as response:
                    answer = await response.read()
                    if response.status != 202:
                        raise RuntimeError(f"publish answered {response.status}: {answer[:300]!r}")
                latencies.append(time.perf_counter() - started)
                stored += json.loads(answer)["stored"]
                requests += 1

        started = time.monotonic()
        lanes = range(first_lane, first_lane + publishers_per_resource)  # ids never repeat between runs
        await asyncio.gather(*(publisher(r, lane) for r in resources for lane in lanes))
        elapsed = time.monotonic() - started
    return {
        "events_per_s": stored / elapsed,
        "stored": stored,
        "requests": requests,
        "request_p50_ms": percentile(latencies, 50) * 1000,
        "request_p99_ms": percentile(latencies, 99) * 1000,
        "seconds": elapsed,
    }


async def run(quick: bool) -> Result:
    seconds = 2.5 if quick else 10.0
    batch = 970
    raw_seconds = 1.0 if quick else 10.0
    concurrency = 8
    # One Azurite for the baselines and Herald: each writes a table of its own (Azurite indexes and
    # scans per table), so none slows the next.
    with azurite(in_memory=True) as store:
        baseline = await raw.table_inserts(store.connection_string, seconds=raw_seconds, concurrency=concurrency)
        limit = await raw.table_inserts(
            store.connection_string, seconds=raw_seconds, concurrency=concurrency, encoding="lean", table="rawlean"
        )
        # The publisher's rate limit (HERALD_PUBLISH_RATE_PER_SECOND, 2,000/s by default) is lifted: this
        # measures how fast Herald stores, not the quota it grants one publisher.
        with devhost(store, {"HERALD_PUBLISH_RATE_PER_SECOND": "1000000"}) as host:
            headers = host.headers("events.publish")
            resources = [f"urn:bench:ingest:{i}" for i in range(concurrency)]
            for resource in resources:
                host.open_resource(resource)
            # A short warm-up (imports, first transactions, connection pools), then the measured run.
            await publish_for(
                host.url,
                headers,
                resources=resources,
                publishers_per_resource=1,
                batch=batch,
                seconds=1.0 if quick else 1.5,
                first_lane=10,
            )
            cpu_before, azurite_before = host.cpu_seconds(), store.cpu_seconds()
            with profiled(host.process.pid, "ingest"):
                measured = await publish_for(
                    host.url,
                    headers,
                    resources=resources,
                    publishers_per_resource=1 if quick else 2,
                    batch=batch,
                    seconds=seconds,
                )
            measured["devhost_cpu_share"] = (host.cpu_seconds() - cpu_before) / measured["seconds"]
            measured["azurite_cpu_share"] = (store.cpu_seconds() - azurite_before) / measured["seconds"]
    ratio = measured["events_per_s"] / baseline["entities_per_s"]
    of_limit = measured["events_per_s"] / limit["entities_per_s"]
    return Result(
        name="ingest",
        title="Ingest: events/s stored through POST /api/v1/events",
        figure=f"{measured['events_per_s']:,.0f} events/s ({of_limit:.2f} of Azurite's own limit)",
        baseline=(
            f"{baseline['entities_per_s']:,.0f} entities/s (raw 100-op transactions with submit_transaction, "
            f"concurrency {concurrency}); Azurite's limit with a lean encoding {limit['entities_per_s']:,.0f}"
        ),
        ratio=ratio,
        target="≥ 0.80 of raw",
        met=ratio >= 0.8,
        details={"herald": measured, "raw": baseline, "azurite_limit": limit, "resources": concurrency, "batch": batch},
    )
