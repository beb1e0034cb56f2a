"""Scenario 6, cost: storage and queue operations per delivered event, counted by instrumented
adapters (azure-core request hooks on Herald's own Table and queue clients), priced at Azure list
prices beside Azure Event Grid; and the function CPU time per delivered event.

devhost runs in-process here (the clients must be Herald's own, instrumented): only counts are
taken from this scenario, never rates."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import aiohttp

from bench.env import STATE, Result, azurite, cpu_seconds, open_resource, receiver
from devhost.azurite import free_port

# Azure list prices (pay-as-you-go, USD, West Europe / East US, as published in 2025; check
# https://azure.microsoft.com/pricing/ before relying on them).
PRICES_DATE = "2025 list prices (not re-checked online in this run: the benchmark machine is offline)"
PRICES: dict[str, float] = {
    "table_transactions_per_10k": 0.00036,  # Table Storage, Standard LRS, per 10,000 transactions
    "service_bus_standard_per_million_ops": 0.80,  # Standard tier, beyond the 13 M included
    "event_grid_basic_per_million_ops": 0.60,  # Basic tier, beyond the first 100,000 a month
    "flex_consumption_per_gb_s": 0.000026,  # Functions Flex Consumption, on-demand execution time
}
# What a delivered event costs in Event Grid: its publish and its delivery are one operation each.
EVENT_GRID_OPS_PER_DELIVERED_EVENT = 2


class Count:
    """Counts requests through azure-core's hooks: per method and path kind, and entities sent in batches."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()

    def hooks(self) -> dict[str, Any]:
        return {"raw_request_hook": self._request}

    def _request(self, request: Any) -> None:
        http = request.http_request
        path = http.url.split("?")[0].rsplit("/", 1)[-1]
        kind = "batch" if path == "$batch" else ("messages" if path == "messages" else path.split("(")[0])
        self.requests[f"{http.method} {kind}"] += 1

    def reset(self) -> None:
        self.requests.clear()

    @property
    def total(self) -> int:
        return sum(self.requests.values())


async def run(quick: bool) -> Result:
    from azure.data.tables.aio import TableServiceClient

    from devhost import DevHost, DevHostOptions
    from devhost.issuer import ensure_issuer_keys, issue_token
    from shared.adapters.storage_queue_bus import StorageQueueBus
    from shared.adapters.tables import storage_client_options
    from shared.composition import root
    from shared.composition.root import build_herald
    from shared.composition.storage import provision
    from shared.config import load_settings

    events_count = 200 if quick else 2_000
    state = STATE / "cost"
    jwks = ensure_issuer_keys(state)
    with azurite() as store, receiver() as sink:
        port = free_port()
        settings = load_settings(
            {
                "HeraldStorage": store.connection_string,
                "HERALD_AUTH_JWKS_PATH": str(jwks),
                "HERALD_SECRET_KEY_PATH": str(state / "secret.key"),
                "HERALD_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            }
        )
        await provision(settings)
        tables, queues = Count(), Count()
        herald = build_herald(
            settings,
            tables=TableServiceClient.from_connection_string(
                store.connection_string, **storage_client_options(), **tables.hooks()
            ),
            bus=StorageQueueBus(store.connection_string, **queues.hooks()),
        )
        root.install(herald)
        from function_app import app

        app.functions_bindings = None
        options = DevHostOptions(
            port=port,
            storage_connection_string=store.connection_string,
            provision_app=False,
            jwks_path=jwks,
            max_idle_wait=0.1,
        )
        token = issue_token("org:991825827", ["events.publish", "events.subscribe"], state_dir=state)
        headers = {"Authorization": f"Bearer {token}"}
        try:
            async with DevHost(app, options) as host, aiohttp.ClientSession(headers=headers) as session:
                resource = "urn:bench:cost"
                admin = issue_token("system:bench-admin", ["admin"], state_dir=state)
                await asyncio.to_thread(open_resource, host.url, admin, resource)
                async with session.post(
                    f"{host.url}/api/v1/subscriptions",
                    json={"endPoint": f"{sink.url}/hook/0", "resourceFilter": resource},
                ) as response:
                    created = await response.json()
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    async with session.get(f"{host.url}/api/v1/subscriptions/{created['id']}") as response:
                        if (await response.json())["status"] == "active":
                            break
                    await asyncio.sleep(0.2)
                await asyncio.sleep(1)
                sink.reset()
                tables.reset()
                queues.reset()
                cpu = cpu_seconds_self()
                batch = 100
                for first in range(0, events_count, batch):
                    body = [
                        {
                            "specversion": "1.0",
                            "id": f"c{first + i}",
                            "source": "urn:bench:cost",
                            "type": "no.bench.case.created",
                            "resource": resource,
                            "subject": f"person:{i:011d}",
                            "data": {"n": first + i},
                        }
                        for i in range(batch)
                    ]
                    async with session.post(
                        f"{host.url}/api/v1/events",
                        data=json.dumps(body),
                        headers={"Content-Type": "application/cloudevents-batch+json"},
                    ) as response:
                        if response.status != 202:
                            raise RuntimeError(f"publish answered {response.status}")
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline and (await asyncio.to_thread(sink.stats))["total"] < events_count:
                    await asyncio.sleep(0.2)
                await asyncio.sleep(1.5)  # let the last settle writes finish
                delivered = (await asyncio.to_thread(sink.stats))["total"]
                process_cpu = cpu_seconds_self() - cpu
        finally:
            await herald.close()
            root.uninstall()
    table_ops = tables.total / max(1, delivered)
    sends = queues.requests.get("POST messages", 0)
    # Service Bus bills send, receive and complete per message; storage-queue polling is not counted.
    bus_ops = 3 * sends / max(1, delivered)
    table_cost = table_ops * 1e6 * PRICES["table_transactions_per_10k"] / 1e4
    bus_cost = bus_ops * PRICES["service_bus_standard_per_million_ops"]
    event_grid = EVENT_GRID_OPS_PER_DELIVERED_EVENT * PRICES["event_grid_basic_per_million_ops"]
    cpu_ms = process_cpu * 1000 / max(1, delivered)
    # Flex Consumption bills instance memory (2,048 MB here) for execution time; a busy instance's
    # execution time is about its CPU time. The in-process CPU includes the load generator: an upper bound.
    compute_cost = cpu_ms / 1000 * 2.0 * PRICES["flex_consumption_per_gb_s"] * 1e6
    herald = table_cost + bus_cost + compute_cost
    return Result(
        name="cost",
        title="Cost: operations and USD per million delivered events (fan-out 1)",
        figure=(
            f"{table_ops:.2f} table + {bus_ops:.2f} Service Bus ops per delivered event "
            f"+ ≤{cpu_ms:.1f} CPU ms = ${herald:.2f} per million"
        ),
        baseline=f"Event Grid ${event_grid:.2f} per million ({EVENT_GRID_OPS_PER_DELIVERED_EVENT} ops x ${PRICES['event_grid_basic_per_million_ops']}/M)",
        ratio=herald / event_grid,
        target="(none set; report)",
        met=None,
        details={
            "delivered": delivered,
            "events": events_count,
            "table_requests": dict(tables.requests),
            "queue_requests": dict(queues.requests),
            "table_ops_per_delivered_event": table_ops,
            "service_bus_ops_per_delivered_event": bus_ops,
            "usd_per_million": {
                "table": table_cost,
                "service_bus": bus_cost,
                "compute_upper_bound": compute_cost,
                "herald": herald,
                "event_grid": event_grid,
            },
            "in_process_cpu_ms_per_delivered_event": cpu_ms,
            "prices": PRICES,
            "prices_date": PRICES_DATE,
        },
        notes=[
            "CPU per delivered event for the function host alone is the delivery scenario's devhost_cpu_ms_per_delivery "
            "(devhost as its own process); the in-process figure here also includes the load generator."
        ],
    )


def cpu_seconds_self() -> float:
    import os

    return cpu_seconds(os.getpid())
