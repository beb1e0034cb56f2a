"""The hot resource: single-event publishes/s to ONE resource from 32 clients, with devhost running
1 and then 2 instances (``devhost start --instances``), beside devhost's own health route in the same
run. Appends to one resource are ordered by its counter, so this shows what a second instance does
to them; the health route shows what the instances can serve at all."""

from __future__ import annotations

import json
import os
from typing import Any

import aiohttp
import psutil

from bench.env import Result, azurite, closed_loop, devhost, profiled

STRUCTURED = "application/cloudevents+json"
CLIENTS = 32
RESOURCE = "urn:bench:hot"


def _event(n: int) -> bytes:
    document = {
        "specversion": "1.0",
        "id": str(n),
        "source": "urn:bench:hot",
        "type": "no.bench.case.updated",
        "resource": RESOURCE,
        "subject": "person:12345678901",
        "data": {"n": n},
    }
    return json.dumps(document, separators=(",", ":")).encode()


async def _hammer(url: str, headers: dict[str, str], seconds: float, request: Any) -> dict[str, Any]:
    """``CLIENTS`` clients sending ``request(session, client, n)`` back to back for ``seconds``."""
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        return await closed_loop(session, CLIENTS, seconds, lambda client, n: request(session, client, n))


async def _measure(store: Any, instances: int, seconds: float, lane: int) -> dict[str, Any]:
    env = {"HERALD_PUBLISH_RATE_PER_SECOND": "1000000"}
    with devhost(store, env, instances=instances) as host:
        host.open_resource(RESOURCE)
        publish_headers = {**host.headers("events.publish"), "Content-Type": STRUCTURED}

        async def health(session: aiohttp.ClientSession, _client: int, _n: int) -> None:
            async with session.get(f"{host.url}/api/v1/health") as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"health answered {response.status}")

        async def publish(session: aiohttp.ClientSession, client: int, n: int) -> None:
            body = _event((lane + client) * 10**9 + n)
            async with session.post(f"{host.url}/api/v1/events", data=body) as response:
                answer = await response.read()
                if response.status != 202:
                    raise RuntimeError(f"publish answered {response.status}: {answer[:300]!r}")

        await _hammer(host.url, publish_headers, 1.5, publish)  # warm-up: imports, pools, the counter
        load = os.getloadavg()[0]
        cpu, azurite_cpu = host.cpu_seconds(), store.cpu_seconds()
        baseline = await _hammer(host.url, {}, seconds, health)
        baseline["devhost_cpu_ms_per_request"] = (host.cpu_seconds() - cpu) / baseline["requests"] * 1000
        cpu, azurite_cpu = host.cpu_seconds(), store.cpu_seconds()
        # The first instance is profiled (py-spy, HERALD_BENCH_PROFILE): the supervisor only waits.
        children = psutil.Process(host.process.pid).children()
        with profiled(children[0].pid if instances > 1 and children else host.process.pid, f"hot_{instances}"):
            published = await _hammer(host.url, publish_headers, seconds, lambda s, c, n: publish(s, c, n + 10**6))
        published["devhost_cpu_ms_per_request"] = (host.cpu_seconds() - cpu) / published["requests"] * 1000
        published["devhost_cpu_share"] = (host.cpu_seconds() - cpu) / published["seconds"]
        published["azurite_cpu_share"] = (store.cpu_seconds() - azurite_cpu) / published["seconds"]
        return {
            "instances": instances,
            "publishes": published,
            "health": baseline,
            "load_1min_before": load,
            "load_1min_after": os.getloadavg()[0],
        }


async def run(quick: bool) -> Result:
    seconds = 3.0 if quick else 10.0
    runs: list[dict[str, Any]] = []
    with azurite() as store:
        for lane, instances in enumerate((1, 2)):
            runs.append(await _measure(store, instances, seconds, lane * 100))
    one, two = runs
    scale = two["publishes"]["per_s"] / one["publishes"]["per_s"]
    health_scale = two["health"]["per_s"] / one["health"]["per_s"]
    return Result(
        name="hot_resource",
        title=f"Hot resource: single-event publishes/s to one resource, {CLIENTS} clients, 1 and 2 instances",
        figure=(
            f"{one['publishes']['per_s']:,.0f}/s with 1 instance, {two['publishes']['per_s']:,.0f}/s with 2 "
            f"(x{scale:.2f}; health route x{health_scale:.2f})"
        ),
        baseline=(
            f"devhost's health route {one['health']['per_s']:,.0f} req/s with 1 instance, "
            f"{two['health']['per_s']:,.0f} with 2"
        ),
        ratio=scale,
        target="2 instances ≥ 1 instance (x1.00)",
        met=scale >= 1.0,
        details={"runs": runs, "clients": CLIENTS, "machine_cores": os.cpu_count()},
    )
