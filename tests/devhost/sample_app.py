"""A small FunctionApp exercising every trigger devhost hosts (Herald's own app may not be ready)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, List  # noqa: UP035  (see batch below)

import azure.functions as func
from fastapi import FastAPI, Request, Response


@dataclass
class Recorder:
    """Thread-safe record of invocations, shared by the sample functions and the tests."""

    calls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, **record: Any) -> None:
        with self.lock:
            self.calls.setdefault(name, []).append({"at": time.time(), **record})

    def of(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.calls.get(name, []))

    async def wait_for(self, condition: Callable[[], bool], within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {within}s; calls: {self.calls}")
            await asyncio.sleep(0.05)


def build_api(recorder: Recorder) -> FastAPI:
    api = FastAPI(title="devhost sample")

    @api.get("/api/v1/echo", operation_id="echo_get")
    @api.post("/api/v1/echo", operation_id="echo_post")
    async def echo(request: Request) -> Response:
        body = await request.body()
        recorder.add("http", path=request.url.path)
        document = {
            "method": request.method,
            "path": request.url.path,
            "query_string": request.url.query,
            "tags": request.query_params.getlist("tag"),
            "x_custom": request.headers.get("x-custom"),
            "content_type": request.headers.get("content-type"),
            "body": body.decode(),
            "invocation_id": request.scope.get("azure_functions.invocation_id"),
        }
        import json

        response = Response(json.dumps(document), status_code=201, media_type="application/json")
        response.headers["x-echo"] = "yes"
        response.set_cookie("a", "1")
        response.set_cookie("b", "2")
        return response

    return api


def build_app(
    prefix: str, recorder: Recorder, *, fail_times: int = 2, slow_seconds: float = 5.0
) -> func.AsgiFunctionApp:
    app = func.AsgiFunctionApp(app=build_api(recorder), http_auth_level=func.AuthLevel.ANONYMOUS, function_name="api")
    bp = func.Blueprint()  # type: ignore[no-untyped-call]

    def record_message(name: str, message: func.ServiceBusMessage) -> None:
        recorder.add(
            name,
            message_id=message.message_id,
            delivery_count=message.delivery_count,
            body=message.get_body(),
            properties=dict(message.application_properties),
            content_type=message.content_type,
            correlation_id=message.correlation_id,
            subject=message.subject,
            sequence_number=message.sequence_number,
            locked_until=message.locked_until,
        )

    # The queue name comes from an app setting, as Herald's may.
    @bp.function_name("flaky")
    @bp.service_bus_queue_trigger(
        arg_name="msg", queue_name="%DEVHOST_TEST_FLAKY_QUEUE%", connection="ServiceBusConnection"
    )
    async def flaky(msg: func.ServiceBusMessage, context: func.Context) -> None:
        record_message("flaky", msg)
        assert context.function_name == "flaky"
        if (msg.delivery_count or 0) <= fail_times:
            raise RuntimeError(f"planned failure {msg.delivery_count}")

    @bp.function_name("poison")
    @bp.service_bus_queue_trigger(arg_name="msg", queue_name=f"{prefix}-poison", connection="ServiceBusConnection")
    async def poison(msg: func.ServiceBusMessage) -> None:
        record_message("poison", msg)
        raise ValueError("cannot process this one")

    @bp.function_name("slow")
    @bp.service_bus_queue_trigger(arg_name="msg", queue_name=f"{prefix}-slow", connection="ServiceBusConnection")
    def slow(msg: func.ServiceBusMessage) -> None:  # synchronous: runs on devhost's thread pool
        record_message("slow", msg)
        time.sleep(slow_seconds)
        recorder.add("slow_done", message_id=msg.message_id)

    @bp.function_name("outlive")
    @bp.service_bus_queue_trigger(arg_name="msg", queue_name=f"{prefix}-outlive", connection="ServiceBusConnection")
    def outlive(msg: func.ServiceBusMessage) -> None:
        """The first delivery runs slow_seconds, past any lock renewal limit the test sets."""
        record_message("outlive", msg)
        if msg.delivery_count == 1:
            time.sleep(slow_seconds)
        recorder.add("outlive_done", delivery_count=msg.delivery_count)

    def recording(name: str) -> Callable[[func.ServiceBusMessage], Awaitable[None]]:
        async def receive(msg: func.ServiceBusMessage) -> None:
            record_message(name, msg)

        return receive

    # Receivers that only record; the tests give their queues different properties.
    for name in ("delayed", "dedup", "plain"):
        trigger = bp.service_bus_queue_trigger(
            arg_name="msg", queue_name=f"{prefix}-{name}", connection="ServiceBusConnection"
        )
        bp.function_name(name)(trigger(recording(name)))

    @bp.function_name("batch")
    @bp.service_bus_queue_trigger(
        arg_name="msgs", queue_name=f"{prefix}-batch", connection="ServiceBusConnection", cardinality="many"
    )
    # typing.List, not list[...]: the Python worker refuses to load a PEP 585 alias here.
    async def batch(msgs: List[func.ServiceBusMessage]) -> None:  # noqa: UP006
        recorder.add("batch", size=len(msgs), ids=[m.message_id for m in msgs])

    @bp.function_name("tick")
    @bp.timer_trigger(arg_name="timer", schedule="* * * * * *", run_on_startup=True)
    async def tick(timer: func.TimerRequest) -> None:
        recorder.add("tick", past_due=timer.past_due)

    @bp.function_name("on_event")
    @bp.event_grid_trigger(arg_name="event")
    def on_event(event: func.EventGridEvent) -> None:
        # The converter builds a CloudEvent for CloudEvents-schema input whatever the annotation says.
        if isinstance(event, func.CloudEvent):
            recorder.add("on_event", kind="CloudEvent", id=event.id, event_type=event.type, topic=event.source)
            return
        recorder.add(
            "on_event",
            kind="EventGridEvent",
            id=event.id,
            event_type=event.event_type,
            subject=event.subject,
            topic=event.topic,
            data=event.get_json(),
            event_time=event.event_time,
        )

    @bp.function_name("on_raw_event")
    @bp.event_grid_trigger(arg_name="event")
    async def on_raw_event(event: str) -> None:
        # A str annotation takes the worker's generic binding: the event's JSON as delivered.
        recorder.add("on_raw_event", raw=event)

    @bp.function_name("on_event_fails")
    @bp.event_grid_trigger(arg_name="event")
    async def on_event_fails(event: func.EventGridEvent) -> None:
        raise RuntimeError("event handler exploded")

    app.register_functions(bp)
    return app
