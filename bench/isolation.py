"""Scenario 4, head-of-line isolation: deliveries/s to healthy endpoints while 10 % of the endpoints
hang until Herald's webhook timeout, as a ratio of the same run with every endpoint healthy."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from bench.delivery import events, publish, span, subscribe, wait_for
from bench.env import Result, webhook_rig

ENDPOINTS = 20
HANGING = 2  # 10 %


async def healthy_rate(
    host, sink, session, resource: str, prefix: str, count: int, healthy: int, wait: float = 120.0
) -> dict[str, Any]:
    sink.reset()
    batches = range(0, count, 250)
    await asyncio.gather(
        *(publish(host, session, events(resource, i, min(250, count - i), stamp=False)) for i in batches)
    )
    expected = count * healthy
    stats = await wait_for(sink, expected, timeout=wait, paths=prefix)
    got, seconds = span(stats, prefix)
    return {"deliveries": got, "expected": expected, "deliveries_per_s": got / seconds if seconds > 0 else 0.0}


async def run(quick: bool) -> Result:
    count = 100 if quick else 1_000
    wait = 30.0 if quick else 120.0
    with webhook_rig() as (_, sink, host):
        async with aiohttp.ClientSession() as session:
            mixed_endpoints = [f"{sink.url}/hook/b{i}" for i in range(ENDPOINTS - HANGING)]
            mixed_endpoints += [f"{sink.url}/hang/{i}" for i in range(HANGING)]
            await asyncio.gather(
                subscribe(host, session, "urn:bench:warm", [f"{sink.url}/hook/w{i}" for i in range(ENDPOINTS)]),
                subscribe(host, session, "urn:bench:healthy", [f"{sink.url}/hook/a{i}" for i in range(ENDPOINTS)]),
                subscribe(host, session, "urn:bench:mixed", mixed_endpoints),
            )
            await healthy_rate(host, sink, session, "urn:bench:warm", "w", 10 if quick else 100, ENDPOINTS, wait)
            all_healthy = await healthy_rate(host, sink, session, "urn:bench:healthy", "a", count, ENDPOINTS, wait)
            mixed = await healthy_rate(host, sink, session, "urn:bench:mixed", "b", count, ENDPOINTS - HANGING, wait)
    # Per healthy endpoint, so the two runs compare like for like (18 vs 20 healthy endpoints).
    per_all = all_healthy["deliveries_per_s"] / ENDPOINTS
    per_mixed = mixed["deliveries_per_s"] / (ENDPOINTS - HANGING)
    ratio = per_mixed / per_all if per_all else 0.0
    return Result(
        name="isolation",
        title="Isolation: healthy deliveries/s with 10 % of endpoints hanging",
        figure=f"{mixed['deliveries_per_s']:,.0f} deliveries/s to {ENDPOINTS - HANGING} healthy endpoints ({mixed['deliveries']:,} of {mixed['expected']:,})",
        baseline=f"{all_healthy['deliveries_per_s']:,.0f} deliveries/s to {ENDPOINTS} endpoints, all healthy",
        ratio=ratio,
        target="≥ 0.90 (per healthy endpoint)",
        met=ratio >= 0.9 and mixed["deliveries"] >= mixed["expected"],
        details={"all_healthy": all_healthy, "mixed": mixed, "endpoints": ENDPOINTS, "hanging": HANGING},
    )
