"""Webhook receivers for the delivery scenarios, in a process of their own (``python -m bench.receiver``).

``POST /hook/<n>`` answers 204 at once; ``POST /hang/<n>`` never answers (the sender's timeout ends it);
``POST /slow/<n>`` answers after the delay last set with ``POST /slowdown?seconds=<s>`` (0 at first),
an endpoint that starts healthy and then turns slow.
Each receipt is counted once per ``webhook-id`` (redeliveries are counted as duplicates) per path; an event whose data holds ``"t": <unix seconds>`` (its publish time)
adds a publish-to-receipt latency. ``GET /stats`` returns the counts and latencies, ``POST /reset`` clears them.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from collections import Counter
from typing import Any

from aiohttp import web

_T = re.compile(rb'"t":\s*([0-9.]+)')


class Receipts:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.counts: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.path_latencies: dict[str, list[float]] = {}
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.validations = 0
        self.seen: set[str] = set()
        self.duplicates = 0


async def main(port: int) -> None:
    receipts = Receipts()
    slowdown = [0.0]

    async def hook(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        now = time.time()
        if b"validatesubscription" in body:
            receipts.validations += 1
            return web.Response(status=200)
        webhook_id = request.headers.get("webhook-id")
        if webhook_id is not None:
            if webhook_id in receipts.seen:
                receipts.duplicates += 1
                return web.Response(status=204)
            receipts.seen.add(webhook_id)
        path = request.match_info["n"]
        receipts.counts[path] += 1
        receipts.first.setdefault(path, now)
        receipts.last[path] = now
        found = _T.search(body)
        if found and float(found.group(1)) > 0:
            receipts.latencies.append(now - float(found.group(1)))
            receipts.path_latencies.setdefault(path, []).append(now - float(found.group(1)))
        return web.Response(status=204)

    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(slowdown[0])
        return await hook(request)

    async def set_slowdown(request: web.Request) -> web.StreamResponse:
        slowdown[0] = float(request.query.get("seconds", "0"))
        return web.Response(status=204)

    async def hang(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if b"validatesubscription" in body:
            return web.Response(status=200)
        await asyncio.sleep(3600)
        return web.Response(status=204)

    async def options(request: web.Request) -> web.StreamResponse:
        return web.Response(status=200, headers={"WebHook-Allowed-Origin": "*", "WebHook-Allowed-Rate": "*"})

    async def stats(request: web.Request) -> web.StreamResponse:
        document: dict[str, Any] = {
            "counts": dict(receipts.counts),
            "total": sum(receipts.counts.values()),
            "latencies": receipts.latencies,
            "path_latencies": receipts.path_latencies,
            "first": receipts.first,
            "last": receipts.last,
            "validations": receipts.validations,
            "duplicates": receipts.duplicates,
        }
        return web.json_response(document)

    async def reset(request: web.Request) -> web.StreamResponse:
        receipts.reset()
        return web.Response(status=204)

    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_post("/hook/{n}", hook)
    app.router.add_post("/hang/{n}", hang)
    app.router.add_post("/slow/{n}", slow)
    app.router.add_post("/slowdown", set_slowdown)
    app.router.add_route("OPTIONS", "/{kind}/{n}", options)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)
    await site.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
