"""Scenario 4b, an endpoint that turns slow: publish-to-receipt latency of a fast endpoint beside one that
starts healthy and then takes seconds per answer, as a ratio to the same fast endpoint alone.

Events are published one at a time at a steady rate, so each outbound message carries one event's
deliveries (the fast endpoint's and the slow one's) and holds its handler until both are answered."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from bench.delivery import events, publish, subscribe, wait_for
from bench.env import DevhostProcess, ReceiverProcess, Result, percentile, webhook_rig

EVENTS_PER_S = 2.0
SLOW_SECONDS = 10.0  # per answer once the slow endpoint has turned slow


async def paced(host: DevhostProcess, session: aiohttp.ClientSession, resource: str, first: int, seconds: float) -> int:
    """Publishes one event every 1/EVENTS_PER_S seconds, each without waiting for the last (so a
    slow answer from devhost does not lower the rate); returns how many."""
    sent: list[asyncio.Task[None]] = []
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        sent.append(asyncio.create_task(publish(host, session, events(resource, first + len(sent), 1, stamp=True))))
        await asyncio.sleep(max(0.0, start + len(sent) / EVENTS_PER_S - time.monotonic()))
    await asyncio.gather(*sent)
    return len(sent)


async def fast_latency(
    host: DevhostProcess,
    sink: ReceiverProcess,
    session: aiohttp.ClientSession,
    resource: str,
    path: str,
    first: int,
    seconds: float,
) -> dict[str, Any]:
    sink.reset()
    sent = await paced(host, session, resource, first, seconds)
    stats = await wait_for(sink, sent, timeout=120.0, paths=path)
    latencies = stats["path_latencies"].get(path, [])
    return {
        "events": sent,
        "received": stats["counts"].get(path, 0),
        "p50_s": percentile(latencies, 50),
        "p99_s": percentile(latencies, 99),
        "max_s": max(latencies, default=float("nan")),
    }


async def run(quick: bool) -> Result:
    seconds = 10.0 if quick else 30.0
    with webhook_rig() as (_, sink, host):
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(
                subscribe(host, session, "urn:bench:alone", [f"{sink.url}/hook/z0"]),
                subscribe(host, session, "urn:bench:beside", [f"{sink.url}/hook/y0", f"{sink.url}/slow/0"]),
            )
            alone = await fast_latency(host, sink, session, "urn:bench:alone", "z0", 0, seconds)
            # Healthy at first: the slow endpoint answers at once, as the fast one does.
            sink.slow_down(0)
            await paced(host, session, "urn:bench:beside", 10**6, 10.0)
            sink.slow_down(SLOW_SECONDS)
            try:
                beside = await fast_latency(host, sink, session, "urn:bench:beside", "y0", 2 * 10**6, seconds)
                slow_received = (await asyncio.to_thread(sink.stats))["counts"].get("0", 0)
            finally:
                sink.slow_down(0)
    ratio = beside["p99_s"] / alone["p99_s"] if alone["p99_s"] > 0 else None

    def figures(run: dict[str, Any]) -> str:
        return f"p50/p99/max {run['p50_s']:.2f}/{run['p99_s']:.2f}/{run['max_s']:.2f} s"

    return Result(
        name="slowdown",
        title=f"Slowdown: a fast endpoint beside one that turns slow ({SLOW_SECONDS:g} s per answer)",
        figure=f"{figures(beside)} ({beside['received']} of {beside['events']} at {EVENTS_PER_S:g} events/s)",
        baseline=f"{figures(alone)}, the same endpoint alone",
        ratio=ratio,
        target="p99 ≤ 2 x alone",
        met=ratio is not None and ratio <= 2.0 and beside["received"] >= beside["events"],
        details={
            "alone": alone,
            "beside": beside,
            "slow_seconds": SLOW_SECONDS,
            "slow_received_while_measured": slow_received,
        },
    )
