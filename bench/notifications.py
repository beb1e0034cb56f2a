"""Scenario 5, notifications: emails/s from one order of ~10,000 recipients to the local sink, and the
time until every notification is ``Delivered``, beside the raw table-insert rate of the same Azurite."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import aiohttp

from bench import raw
from bench.env import Result, azurite, devhost, profiled

SENT = {"Succeeded", "Delivered"}


async def run(quick: bool) -> Result:
    recipients = 300 if quick else 10_000
    timeout = 40 if quick else 400
    poll = 2.0 if quick else 5.0
    with azurite() as store:
        baseline = await raw.table_inserts(store.connection_string, seconds=4 if quick else 8, table="rawnotify")
        with devhost(store) as host:  # the sink reports after its default 2 s, as ACS would later
            headers = host.headers("notifications.order")
            order = {
                "idempotencyId": f"bench-{time.time_ns()}",
                "sendersReference": "bench",
                "notificationChannel": "Email",
                "emailTemplate": {"subject": "Your case", "body": "Hello $recipientName$, your case is ready."},
                "recipients": [{"emailAddress": f"person{i}@example.com"} for i in range(recipients)],
            }
            async with aiohttp.ClientSession(headers=headers) as session:
                started = time.monotonic()
                cpu = host.cpu_seconds()
                async with session.post(f"{host.url}/api/v1/notifications/orders", json=order) as response:
                    body = await response.json()
                    if response.status != 202:
                        raise RuntimeError(f"order answered {response.status}: {str(body)[:300]}")
                accepted = time.monotonic() - started
                order_id = body["orderId"]
                sent_at: float | None = None
                delivered_at: float | None = None
                counts: Counter[str] = Counter()
                with profiled(host.process.pid, "notifications"):
                    while time.monotonic() - started < timeout:
                        await asyncio.sleep(poll)  # each status read costs devhost a read of every notification
                        url = f"{host.url}/api/v1/notifications/orders/{order_id}/status"
                        async with session.get(url) as response:
                            status: dict[str, Any] = await response.json()
                        counts = Counter(n["sendStatus"]["status"] for n in status.get("notifications", []))
                        now = time.monotonic() - started
                        if sent_at is None and sum(counts[s] for s in SENT) >= recipients:
                            sent_at = now
                        if counts["Delivered"] >= recipients:
                            delivered_at = now
                            break
                cpu_ms = (host.cpu_seconds() - cpu) * 1000
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
            "raw": baseline,
            "status_poll_s": poll,
        },
    )
