"""Run by tests/infra/test_telemetry.py in a fresh interpreter, as the Functions worker loads Herald.

Imports ``function_app`` with Azure Monitor configured (its exporter points at a closed loopback port),
records every span in memory, publishes one event through the HTTP API the app serves, asks for its health
and runs the inbound stage on the message that publish queued. Prints the finished spans as JSON lines.
"""

from __future__ import annotations

import asyncio
import json
import os

import httpx
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import function_app  # noqa: F401  (first, as the worker imports it)
from functions.http_api import api
from shared.composition.root import process_herald
from shared.events.dispatch import INBOUND_QUEUE
from tests.support.pipeline import drain


async def main() -> None:
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider), "configure_telemetry installed no SDK tracer provider"
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    herald = await process_herald()
    headers = {"Authorization": os.environ["PROBE_AUTHORIZATION"], "Content-Type": "application/cloudevents+json"}
    transport = httpx.ASGITransport(app=api)  # the ASGI app function_app.app serves
    async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as http:
        response = await http.post("/api/v1/events", headers=headers, content=os.environ["PROBE_EVENT"])
        assert (await http.get("/api/v1/health")).status_code == 200
    assert response.status_code == 202, response.text
    assert await drain(herald.stores, (INBOUND_QUEUE,)) >= 1
    await herald.close()
    for span in exporter.get_finished_spans():
        context = span.get_span_context()
        scope = span.instrumentation_scope.name if span.instrumentation_scope else None
        print(json.dumps({"name": span.name, "kind": span.kind.name, "trace": context.trace_id, "scope": scope}))


asyncio.run(main())
