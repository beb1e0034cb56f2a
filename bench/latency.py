"""Scenario 3b, push latency at a publisher's steady pace: the load-test profile Altinn Events runs
(k6, fixed rate: 20 single-event publishes per second, one subscription, a local receiver).

Open loop: each publish starts at its scheduled time whether or not the one before has been answered,
so a slow answer does not lower the offered rate. Figures: publish latency (the POST's answer) and
publish-to-push latency (the receiver's receipt time minus the publish time in the event). Baselines in
the same run, at the same fixed rate: POSTs straight to the same receiver, and devhost's health route."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable

import aiohttp

from bench.delivery import subscribe, wait_for
from bench.env import Result, azurite, devhost, percentile, profiled, receiver

RATE = 20.0  # publishes per second, one event each
TARGET_P99_MS = 250.0
STRUCTURED = "application/cloudevents+json"
RESOURCE = "urn:bench:latency"


def event(n: int) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": f"k{n}",
            "source": "urn:bench:latency",
            "type": "no.bench.case.updated",
            "resource": RESOURCE,
            "subject": f"person:{n % 1000:011d}",
            "data": {"t": time.time(), "caseId": n, "note": "x" * 200},
        },
        separators=(",", ":"),
    ).encode()


async def fixed_rate(call: Callable[[int], Awaitable[None]], seconds: float, rate: float = RATE) -> list[float]:
    """Starts ``call(n)`` every 1/rate seconds for ``seconds`` (open loop); the seconds each took."""
    took: list[float] = []

    async def timed(n: int) -> None:
        began = time.perf_counter()
        await call(n)
        took.append(time.perf_counter() - began)

    tasks: list[asyncio.Task[None]] = []
    start = time.monotonic()
    count = int(seconds * rate)
    for n in range(count):
        await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
        tasks.append(asyncio.create_task(timed(n)))
    await asyncio.gather(*tasks)
    return took


def ms(samples: list[float], *points: float) -> dict[str, float]:
    return {f"p{p:g}_ms": percentile(samples, p) * 1000 for p in points}


async def run(quick: bool) -> Result:
    seconds = 15.0 if quick else 60.0
    baseline_seconds = 5.0 if quick else 10.0
    load_before = os.getloadavg()
    with azurite() as store, receiver() as sink, devhost(store) as host:
        connector = aiohttp.TCPConnector(limit=100)
        async with aiohttp.ClientSession(connector=connector) as session:
            await subscribe(host, session, RESOURCE, [f"{sink.url}/hook/k0"])
            headers = host.headers("events.publish", content_type=STRUCTURED)

            async def post_raw(n: int) -> None:
                async with session.post(f"{sink.url}/hook/raw", data=b'{"t":0}') as response:
                    await response.read()

            async def health(n: int) -> None:
                async with session.get(f"{host.url}/api/v1/health") as response:
                    await response.read()

            async def publish(n: int) -> None:
                async with session.post(f"{host.url}/api/v1/events", data=event(n), headers=headers) as response:
                    if response.status != 202:
                        raise RuntimeError(f"publish answered {response.status}: {(await response.read())[:300]!r}")
                    await response.read()

            raw = await fixed_rate(post_raw, baseline_seconds)
            healthy = await fixed_rate(health, baseline_seconds)
            # Warm-up: connections, caches and the pipeline's first messages; not measured.
            await fixed_rate(lambda n: publish(10**6 + n), 3.0)
            await wait_for(sink, int(3.0 * RATE), timeout=30, paths="k")
            sink.reset()
            cpu = host.cpu_seconds()
            with profiled(host.process.pid, "latency"):
                published = await fixed_rate(publish, seconds)
            stats = await wait_for(sink, len(published), timeout=60, paths="k")
            cpu_ms = (host.cpu_seconds() - cpu) * 1000
    load_after = os.getloadavg()
    pushes = stats["path_latencies"].get("k0", [])
    received = stats["counts"].get("k0", 0)
    push = {**ms(pushes, 50, 99), "max_ms": max(pushes, default=float("nan")) * 1000}
    publish_ms = ms(published, 50, 95, 99)
    raw_ms = ms(raw, 50, 99)
    health_ms = ms(healthy, 50, 99)
    met = push["p99_ms"] < TARGET_P99_MS and received >= len(published)
    notes = [] if received >= len(published) else [f"only {received} of {len(published)} events were pushed"]
    return Result(
        name="latency",
        title=f"Latency: publish-to-push at {RATE:g} single-event publishes/s (k6 profile), one subscription",
        figure=(
            f"push p50/p99/max {push['p50_ms']:.0f}/{push['p99_ms']:.0f}/{push['max_ms']:.0f} ms "
            f"({received} of {len(published)}); publish p50/p95/p99 "
            f"{publish_ms['p50_ms']:.0f}/{publish_ms['p95_ms']:.0f}/{publish_ms['p99_ms']:.0f} ms"
        ),
        baseline=(
            f"raw POST to the receiver p50/p99 {raw_ms['p50_ms']:.1f}/{raw_ms['p99_ms']:.1f} ms; devhost health "
            f"p50/p99 {health_ms['p50_ms']:.1f}/{health_ms['p99_ms']:.1f} ms (same rate)"
        ),
        ratio=None,
        target=f"push p99 < {TARGET_P99_MS:.0f} ms",
        met=met,
        details={
            "rate_per_s": RATE,
            "seconds": seconds,
            "published": len(published),
            "received": received,
            "duplicates": stats["duplicates"],
            "push": push,
            "publish": publish_ms,
            "raw_post": raw_ms,
            "health": health_ms,
            "devhost_cpu_ms_per_event": cpu_ms / max(1, len(published)),
            "loadavg_1m_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        },
        notes=notes,
    )
