"""devhost's pure parts: settings loading, function indexing, routes, schedules."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import azure.functions as func
import pytest

from devhost.functions_index import FunctionIndexError, TriggerKind, index_functions, resolve_setting_expressions
from devhost.http import compile_route, to_response
from devhost.settings import load_local_settings
from devhost.timers import Schedule
from tests.devhost.sample_app import Recorder, build_app


def test_local_settings_fill_the_environment_without_overriding(tmp_path: Path) -> None:
    (tmp_path / "local.settings.sample.json").write_text(json.dumps({"IsEncrypted": False, "Values": {"A": "sample"}}))
    (tmp_path / "local.settings.json").write_text(
        json.dumps({"IsEncrypted": False, "Values": {"A": "local", "B": "b", "FLAG": True, "N": 3}})
    )
    environ = {"B": "already"}
    loaded = load_local_settings(tmp_path, environ)
    assert loaded.path == tmp_path / "local.settings.json"
    assert environ == {"A": "local", "B": "already", "FLAG": "true", "N": "3"}
    assert loaded.kept == ["B"]


def test_sample_settings_are_the_fallback(tmp_path: Path) -> None:
    (tmp_path / "local.settings.sample.json").write_text(json.dumps({"IsEncrypted": False, "Values": {"A": "sample"}}))
    environ: dict[str, str] = {}
    assert load_local_settings(tmp_path, environ).path == tmp_path / "local.settings.sample.json"
    assert environ == {"A": "sample"}


def test_setting_expressions() -> None:
    assert resolve_setting_expressions("%Q%-x-%R%", {"Q": "inbound", "R": "1"}) == "inbound-x-1"
    assert resolve_setting_expressions("plain", {}) == "plain"
    with pytest.raises(FunctionIndexError, match="MISSING"):
        resolve_setting_expressions("%MISSING%", {})


def test_index_reads_triggers_and_resolves_settings() -> None:
    app = build_app("p", Recorder())
    index = index_functions(app, {"DEVHOST_TEST_FLAKY_QUEUE": "resolved-flaky"})
    assert index_functions(app, {"DEVHOST_TEST_FLAKY_QUEUE": "again"}).find("flaky") is not None  # re-indexable
    flaky = index.find("FLAKY")  # names are case-insensitive, as in the host
    assert flaky is not None and flaky.kind is TriggerKind.SERVICE_BUS
    assert (flaky.queue_name, flaky.trigger_arg, flaky.is_async, flaky.wants_context) == (
        "resolved-flaky",
        "msg",
        True,
        True,
    )
    batch = index.find("batch")
    assert batch is not None and batch.cardinality_many
    slow = index.find("slow")
    assert slow is not None and not slow.is_async
    tick = index.find("tick")
    assert tick is not None and (tick.schedule, tick.run_on_startup) == ("* * * * * *", True)
    [http] = index.of_kind(TriggerKind.HTTP)
    assert (http.name, http.route) == ("api", "/{*route}")
    assert {spec.name for spec in index.of_kind(TriggerKind.EVENT_GRID)} == {
        "on_event",
        "on_event_fails",
        "on_raw_event",
    }


def test_route_templates() -> None:
    catch_all, groups, _ = compile_route("", "/{*route}")
    for path in ("/", "/api/v1/events", "/docs"):
        assert catch_all.match(path), path
    match = catch_all.match("/api/v1/events")
    assert match is not None and {groups[k]: v for k, v in match.groupdict().items()} == {"route": "api/v1/events"}
    item, groups, _ = compile_route("api", "items/{id:int}/{part?}")
    assert item.match("/api/items/4") and item.match("/API/items/4/x") and not item.match("/items/4")


def test_function_responses_keep_repeated_headers() -> None:
    response = func.HttpResponse("hi", status_code=202, headers={"x-a": "1"})
    response.headers.add_header("set-cookie", "a=1")
    response.headers.add_header("set-cookie", "b=2")
    converted = to_response(response)
    assert converted.status == 202 and converted.body == b"hi"
    assert [v for k, v in converted.headers if k == "set-cookie"] == ["a=1", "b=2"]
    assert ("content-type", "text/plain; charset=utf-8") in converted.headers


def test_schedules() -> None:
    every_five = Schedule("*/5 * * * * *")
    assert every_five.next_after(datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC)) == datetime(2024, 1, 1, 0, 0, 5, tzinfo=UTC)
    assert every_five.next_after(datetime(2024, 1, 1, 0, 0, 5, tzinfo=UTC)) == datetime(
        2024, 1, 1, 0, 0, 10, tzinfo=UTC
    )
    assert Schedule("00:00:30").next_after(datetime(2024, 1, 1, tzinfo=UTC)) == datetime(
        2024, 1, 1, 0, 0, 30, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="six-field"):
        Schedule("*/5 * * * *")


def test_the_http_socket_disables_nagle_for_every_connection():
    """asyncio turns TCP_NODELAY on only for sockets created as IPPROTO_TCP; without it every response
    on a kept-alive connection waited ~40 ms for the client's delayed ACK."""
    import socket

    from devhost.host import _bind

    listener = _bind("127.0.0.1", 0)
    try:
        assert listener.proto == socket.IPPROTO_TCP
        assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        listener.close()
