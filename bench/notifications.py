"""Scenario 5, notifications: emails/s from one order of ~10,000 recipients to the local sink, and the
time until every notification is ``Delivered``, beside the raw table-insert rate of the same Azurite."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from bench import raw
from bench.env import Result, azurite, devhost, profiled

SENT = {"Succeeded", "Delivered"}
RANK = {"New": 1, "Sending": 2, "Succeeded": 3, "Delivered": 4}


RESOURCE = "urn:bench:notifications"


async def run(quick: bool) -> Result:
    recipients = 300 if quick else 10_000
    timeout = 40 if quick else 240
    with azurite() as store:
        baseline = await raw.table_inserts(store.connection_string, seconds=1 if quick else 8, table="rawnotify")
        with devhost(store) as host:  # the sink reports after its default 2 s, as ACS would later
            host.open_resource(RESOURCE)
            order = {
                "idempotencyId": f"bench-{time.time_ns()}",
                "sendersReference": "bench",
                "resourceId": RESOURCE,
                "notificationChannel": "Email",
                "emailTemplate": {"subject": "Your case", "body": "Hello $recipientName$, your case is ready."},
                "recipients": [{"emailAddress": f"person{i}@example.com"} for i in range(recipients)],
            }
            async with aiohttp.ClientSession(headers=host.headers("notifications.order", "events.read")) as session:
                started = time.monotonic()
                cpu, azurite_cpu = host.cpu_seconds(), store.cpu_seconds()
                async with session.post(f"{host.url}/api/v1/notifications/orders", json=order) as response:
                    body = await response.json()
                    if response.status != 202:
                        raise RuntimeError(f"order answered {response.status}: {str(body)[:300]}")
                accepted = time.monotonic() - started
                sent_at: float | None = None
                delivered_at: float | None = None
                # Progress is followed as a consumer would: the order's status events, read with a cursor
                # (incremental; the status endpoint would read every notification on each poll).
                latest: dict[str, str] = {}
                after: str | None = None
                with profiled(host.process.pid, "notifications"):
                    while time.monotonic() - started < timeout:
                        params = {"resource": RESOURCE, "size": "1000", **({"after": after} if after else {})}
                        async with session.get(f"{host.url}/api/v1/events", params=params) as response:
                            page: list[dict[str, Any]] = await response.json()
                            link = response.headers.get("link", "")
                        for event in page:
                            data = event["data"]
                            if RANK.get(data["status"], 0) > RANK.get(latest.get(data["notificationId"], ""), 0):
                                latest[data["notificationId"]] = data["status"]
                        if link.startswith("<"):
                            after = parse_qs(urlsplit(link[1 : link.index(">")]).query).get("after", [after])[0]
                        counts = Counter(latest.values())
                        now = time.monotonic() - started
                        if sent_at is None and sum(counts[s] for s in SENT) >= recipients:
                            sent_at = now
                        if counts["Delivered"] >= recipients:
                            delivered_at = now
                            break
                        if len(page) < 1000:
                            await asyncio.sleep(0.5)
                cpu_ms = (host.cpu_seconds() - cpu) * 1000
                elapsed = time.monotonic() - started
                shares = {
                    "devhost_cpu_share": cpu_ms / 1000 / elapsed,
                    "azurite_cpu_share": (store.cpu_seconds() - azurite_cpu) / elapsed,
                }
    emails_per_s = recipients / sent_at if sent_at else sum(counts[s] for s in SENT) / timeout
    ratio = emails_per_s / baseline["entities_per_s"]
    delivered = (
        f"all Delivered after {delivered_at:.1f} s"
        if delivered_at
        else f"not all Delivered in {timeout} s ({dict(counts)})"
    )
    return Result(
        name="notifications",
        title=f"Notifications: one email order to {recipients:,} recipients",
        figure=f"{emails_per_s:,.0f} emails/s to the sink; {delivered}",
        baseline=f"{baseline['entities_per_s']:,.0f} entities/s (raw table inserts, same Azurite)",
        ratio=ratio,
        target="(none set; report)",
        met=None,
        details={
            "recipients": recipients,
            "order_accepted_s": accepted,
            "all_sent_s": sent_at,
            "all_delivered_s": delivered_at,
            "final_counts": dict(counts),
            "devhost_cpu_ms_per_email": cpu_ms / recipients,
            **shares,
            "raw": baseline,
        },
    )
