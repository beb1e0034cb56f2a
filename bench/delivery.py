"""Scenario 3, delivery: sustained webhook deliveries/s to local receivers and publish-to-receipt
latency, beside the raw rate at which aiohttp (concurrency 64) POSTs to the same receivers.

Scenario 4 (isolation, in ``bench.isolation``) reuses these helpers."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from bench import raw
from bench.env import (
    DevhostProcess,
    ReceiverProcess,
    Result,
    azurite,
    devhost,
    percentile,
    profiled,
    receiver,
    webhook_rig,
)

BATCH = "application/cloudevents-batch+json"
ENDPOINTS = 20
TARGET_RATIO = 0.35  # of the raw POST rate, one instance
SCALE_OUT = 2  # instances of the scale-out phase


def events(resource: str, first: int, count: int, *, stamp: bool) -> bytes:
    now = time.time()
    return json.dumps(
        [
            {
                "specversion": "1.0",
                "id": f"d{first + i}",
                "source": "urn:bench:delivery",
                "type": "no.bench.case.updated",
                "resource": resource,
                "subject": f"person:{(first + i) % 1000:011d}",
                "data": {"t": now if stamp else 0, "caseId": first + i, "note": "x" * 200},
            }
            for i in range(count)
        ],
        separators=(",", ":"),
    ).encode()


async def subscribe(host: DevhostProcess, session: aiohttp.ClientSession, resource: str, endpoints: list[str]) -> None:
    """Creates the subscriptions through the API, all at once, and waits until the validation
    handshake made them active."""
    await asyncio.to_thread(host.open_resource, resource)
    headers = host.headers("events.subscribe")

    async def create(endpoint: str) -> str:
        async with session.post(
            f"{host.url}/api/v1/subscriptions",
            json={"endPoint": endpoint, "resourceFilter": resource},
            headers=headers,
        ) as response:
            body = await response.json()
            if response.status != 201:
                raise RuntimeError(f"subscription create answered {response.status}: {body}")
            return str(body["id"])

    async def active(subscription_id: str) -> bool:
        async with session.get(f"{host.url}/api/v1/subscriptions/{subscription_id}", headers=headers) as response:
            return bool((await response.json()).get("status") == "active")

    pending = set(await asyncio.gather(*(create(endpoint) for endpoint in endpoints)))
    deadline = time.monotonic() + 60
    while pending and time.monotonic() < deadline:
        ids = sorted(pending)
        pending -= {i for i, done in zip(ids, await asyncio.gather(*(active(i) for i in ids)), strict=True) if done}
        await asyncio.sleep(0.1)
    if pending:
        raise RuntimeError(f"{len(pending)} subscriptions never became active")


async def publish(host: DevhostProcess, session: aiohttp.ClientSession, body: bytes) -> None:
    headers = host.headers("events.publish", content_type=BATCH)
    async with session.post(f"{host.url}/api/v1/events", data=body, headers=headers) as response:
        if response.status != 202:
            raise RuntimeError(f"publish answered {response.status}: {(await response.read())[:300]!r}")


def span(stats: dict[str, Any], prefix: str) -> tuple[int, float]:
    """Deliveries to paths starting with ``prefix`` and the seconds from the first to the last of them."""
    paths = [p for p in stats["counts"] if p.startswith(prefix)]
    if not paths:
        return 0, 0.0
    got = sum(stats["counts"][p] for p in paths)
    return got, max(stats["last"][p] for p in paths) - min(stats["first"][p] for p in paths)


async def wait_for(sink: ReceiverProcess, expected: int, timeout: float, paths: str | None = None) -> dict[str, Any]:
    """Waits until the receivers counted ``expected`` deliveries (to paths starting with ``paths``)."""
    deadline = time.monotonic() + timeout
    stats = sink.stats()
    reported = time.monotonic()
    while time.monotonic() < deadline:
        stats = await asyncio.to_thread(sink.stats)
        got = sum(n for p, n in stats["counts"].items() if paths is None or p.startswith(paths))
        if got >= expected:
            break
        if time.monotonic() - reported > 10:
            print(f"bench:   {got:,} of {expected:,} deliveries received", flush=True)
            reported = time.monotonic()
        await asyncio.sleep(0.25)
    return stats


async def throughput(
    host: DevhostProcess,
    sink: ReceiverProcess,
    session: aiohttp.ClientSession,
    resource: str,
    count: int,
    fanout: int,
    wait: float = 120.0,
    prefix: str = "t",
) -> dict[str, Any]:
    """Publishes ``count`` events at once; deliveries/s from the first to the last receipt."""
    sink.reset()
    cpu = host.cpu_seconds()
    started = time.monotonic()
    batches = range(0, count, 500)
    await asyncio.gather(
        *(publish(host, session, events(resource, i, min(500, count - i), stamp=False)) for i in batches)
    )
    stats = await wait_for(sink, count * fanout, timeout=wait, paths=prefix)
    delivered, seconds = span(stats, prefix)
    return {
        "deliveries": delivered,
        "expected": count * fanout,
        "deliveries_per_s": delivered / seconds if seconds > 0 else 0.0,
        "duplicates": stats["duplicates"],
        "publish_to_all_received_s": time.monotonic() - started,
        "devhost_cpu_ms_per_delivery": (host.cpu_seconds() - cpu) * 1000 / max(1, delivered),
    }


async def latency(
    host: DevhostProcess,
    sink: ReceiverProcess,
    session: aiohttp.ClientSession,
    resource: str,
    *,
    events_per_s: float,
    seconds: float,
    fanout: int,
    wait: float = 60.0,
) -> dict[str, Any]:
    """Publishes at a steady rate (small batches every 100 ms); p50/p99 publish-to-receipt."""
    sink.reset()
    per_tick = max(1, round(events_per_s / 10))
    sent = 0
    start = time.monotonic()
    tick = 0
    while time.monotonic() - start < seconds:
        await publish(host, session, events(resource, 10**7 + sent, per_tick, stamp=True))
        sent += per_tick
        tick += 1
        await asyncio.sleep(max(0.0, start + tick * 0.1 - time.monotonic()))
    stats = await wait_for(sink, sent * fanout, timeout=wait, paths="l")
    latencies = stats["latencies"]
    return {
        "events_per_s": sent / seconds,
        "deliveries": span(stats, "l")[0],
        "expected": sent * fanout,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
    }


async def scale_out(count: int, wait: float) -> dict[str, Any]:
    """The burst of the throughput phase again, on processes of its own with ``SCALE_OUT`` devhost
    instances consuming the same queues, as Functions instances would."""
    with azurite() as store, receiver() as sink, devhost(store, instances=SCALE_OUT) as host:
        async with aiohttp.ClientSession() as session:
            phases = {"w": "urn:bench:delivery:warm", "t": "urn:bench:delivery:burst"}
            await asyncio.gather(
                *(
                    subscribe(host, session, resource, [f"{sink.url}/hook/{prefix}{i}" for i in range(ENDPOINTS)])
                    for prefix, resource in phases.items()
                )
            )
            await throughput(host, sink, session, phases["w"], max(10, count // 20), ENDPOINTS, wait, prefix="w")
            return await throughput(host, sink, session, phases["t"], count, ENDPOINTS, wait, prefix="t")


async def run(quick: bool) -> Result:
    count = 150 if quick else 2_000
    seconds = 1.5 if quick else 10.0
    wait = 30.0 if quick else 120.0
    with webhook_rig() as (_, sink, host):
        sample = events("urn:bench:delivery", 0, 1, stamp=False)[1:-1]
        baseline = await raw.http_posts(
            lambda n: f"{sink.url}/hook/raw{n % ENDPOINTS}", seconds=1.0 if quick else 5.0, concurrency=64, body=sample
        )
        async with aiohttp.ClientSession() as session:
            # One resource and set of endpoints per phase, so late deliveries of one phase never count in the next.
            phases = {"w": "urn:bench:delivery:warm", "t": "urn:bench:delivery:burst", "l": "urn:bench:delivery:paced"}
            await asyncio.gather(
                *(
                    subscribe(host, session, resource, [f"{sink.url}/hook/{prefix}{i}" for i in range(ENDPOINTS)])
                    for prefix, resource in phases.items()
                )
            )
            await throughput(host, sink, session, phases["w"], 10 if quick else 100, ENDPOINTS, wait, prefix="w")
            with profiled(host.process.pid, "delivery"):
                measured = await throughput(host, sink, session, phases["t"], count, ENDPOINTS, wait, prefix="t")
            rate = 0.5 * measured["deliveries_per_s"] / ENDPOINTS
            timed = await latency(
                host, sink, session, phases["l"], events_per_s=rate, seconds=seconds, fanout=ENDPOINTS, wait=wait / 2
            )
    scaled = await scale_out(count, wait)
    ratio = measured["deliveries_per_s"] / baseline["posts_per_s"]
    met = ratio >= TARGET_RATIO and timed["p99_ms"] < 1000 and measured["deliveries"] >= measured["expected"]
    if measured["deliveries"] < measured["expected"]:
        notes = [f"only {measured['deliveries']:,} of {measured['expected']:,} deliveries arrived within {wait:.0f} s"]
    else:
        notes = []
    latency_met = timed["p99_ms"] < 1000 and timed["deliveries"] >= timed["expected"]
    notes.append(
        f"latency at half the measured delivery rate ({timed['events_per_s'] * ENDPOINTS:,.0f} deliveries/s offered): "
        f"p99 {timed['p99_ms']:.0f} ms against the target p99 < 1 s: {'met' if latency_met else 'not met'}"
    )
    factor = scaled["deliveries_per_s"] / measured["deliveries_per_s"] if measured["deliveries_per_s"] else 0.0
    notes.append(
        f"scale-out: {SCALE_OUT} devhost instances on one Azurite delivered {scaled['deliveries_per_s']:,.0f}/s "
        f"({scaled['deliveries']:,} of {scaled['expected']:,}; x{factor:.2f} of one instance, "
        f"{scaled['deliveries_per_s'] / baseline['posts_per_s']:.2f} of the raw POST rate; "
        f"{scaled['devhost_cpu_ms_per_delivery']:.2f} ms of devhost CPU per delivery, all instances)"
    )
    return Result(
        name="delivery",
        title="Delivery: webhook deliveries/s; publish-to-receipt latency",
        figure=(
            f"{measured['deliveries_per_s']:,.0f} deliveries/s ({measured['deliveries']:,} of {measured['expected']:,}; "
            f"{measured['devhost_cpu_ms_per_delivery']:.2f} ms devhost CPU each; x{factor:.2f} with {SCALE_OUT} instances); "
            f"p50/p99 {timed['p50_ms']:.0f}/{timed['p99_ms']:.0f} ms at {timed['events_per_s'] * ENDPOINTS:,.0f} deliveries/s offered"
        ),
        baseline=f"{baseline['posts_per_s']:,.0f} POST/s (aiohttp, concurrency 64, same receivers)",
        ratio=ratio,
        target=f"≥ {TARGET_RATIO:.2f} of raw (one instance); p99 < 1 s",
        met=met,
        details={
            "throughput": measured,
            "latency": timed,
            "raw": baseline,
            "endpoints": ENDPOINTS,
            "scale_out": {"instances": SCALE_OUT, "throughput": scaled, "factor": factor},
        },
        notes=notes,
    )
