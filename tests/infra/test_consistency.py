"""What the function app uses is declared in Bicep, and nothing in Bicep is unused.

Queues and Event Grid-triggered functions come FROM THE APP (``function_app.app.get_functions()``),
settings from ``local.settings.sample.json`` (its ``Documentation`` scopes), tables from
``shared.container.TABLES``; the Bicep side is read from ``infra/main.bicep`` variables.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import pytest

from tests.infra.bicep import ROOT, Expression, variables
from tests.support.functions_index import functions

SAMPLE_SETTINGS = ROOT / "local.settings.sample.json"

# App settings Bicep sets that are not Herald's own (so not in local.settings.sample.json).
PLATFORM_SETTINGS: dict[str, str] = {
    "AzureWebJobsStorage__accountName": "Functions host storage (leases, timers), identity-based: replaces AzureWebJobsStorage.",
    "AzureWebJobsStorage__credential": "Functions host storage uses the managed identity.",
    "AzureWebJobsStorage__clientId": "Functions host storage uses the user-assigned identity.",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "Host and shared/telemetry.py export to this Application Insights resource.",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Entra ID ingestion (local auth is disabled) with the user-assigned identity.",
    "PYTHON_ENABLE_OPENTELEMETRY": "The Python worker attaches the host's trace context to each invocation (OpenTelemetry mode).",
}
QUEUE_PROPERTIES = {
    "name": str,
    "maxDeliveryCount": int,
    "lockDuration": str,
    "requiresDuplicateDetection": bool,
    "duplicateDetectionHistoryTimeWindow": str,
    "deadLetteringOnMessageExpiration": bool,
    "defaultMessageTimeToLive": str,
}


@cache
def _bicep() -> dict[str, Any]:
    return variables()


def _functions() -> tuple[Any, ...]:
    # Indexed once per session: azure-functions refuses to index an app twice.
    return functions()


def _sample() -> dict[str, Any]:
    if not SAMPLE_SETTINGS.is_file():
        pytest.skip("local.settings.sample.json does not exist yet")
    data: dict[str, Any] = json.loads(SAMPLE_SETTINGS.read_text())
    return data


def _resolve(name: str) -> str:
    """Binding values may be app-setting expressions (%Name%); resolve them from the sample's values."""
    match = re.fullmatch(r"%(.+)%", name)
    return str(_sample().get("Values", {}).get(match.group(1), name)) if match else name


def _bindings(binding_type: str) -> list[tuple[str, Any]]:
    return [
        (function.get_function_name(), binding)
        for function in _functions()
        for binding in function.get_bindings()
        if binding.type == binding_type
    ]


def test_every_bound_queue_is_declared_and_every_declared_queue_is_bound() -> None:
    bound = {_resolve(binding.queue_name) for _, binding in _bindings("serviceBusTrigger")}
    bound |= {
        _resolve(binding.queue_name) for _, binding in _bindings("serviceBus") if getattr(binding, "queue_name", None)
    }
    declared = {queue["name"] for queue in _bicep()["serviceBusQueues"]}
    assert bound - declared == set(), f"queues the app binds but Bicep does not declare: {sorted(bound - declared)}"
    assert declared - bound == set(), f"queues Bicep declares but the app does not bind: {sorted(declared - bound)}"


def test_queue_names_match_shared_queues() -> None:
    from shared.queues import ALL_QUEUES

    declared = {queue["name"] for queue in _bicep()["serviceBusQueues"]}
    assert set(ALL_QUEUES) == declared


def test_every_queue_has_its_delivery_properties() -> None:
    for queue in _bicep()["serviceBusQueues"]:
        for key, kind in QUEUE_PROPERTIES.items():
            assert isinstance(queue.get(key), kind), (
                f"queue {queue.get('name')}: {key} must be a literal {kind.__name__}"
            )
        assert queue["deadLetteringOnMessageExpiration"] is True, f"queue {queue['name']} must dead-letter on expiry"
        assert 1 <= queue["maxDeliveryCount"] <= 100
        assert re.fullmatch(r"PT(\d+M|\d+S|[1-5]M)", queue["lockDuration"]), queue["lockDuration"]


def test_service_bus_connections_are_identity_based() -> None:
    settings = _bicep()["functionAppSettings"]
    for name, binding in _bindings("serviceBusTrigger"):
        prefix = binding.connection
        for suffix in ("fullyQualifiedNamespace", "credential", "clientId"):
            assert f"{prefix}__{suffix}" in settings, f"{name}: connection {prefix} needs {prefix}__{suffix} in Bicep"


def test_every_event_grid_function_has_a_subscription_and_vice_versa() -> None:
    functions = {name for name, _ in _bindings("eventGridTrigger")}
    subscriptions = _bicep()["communicationEventSubscriptions"] + _bicep()["customTopicEventSubscriptions"]
    subscribed = [entry["functionName"] for entry in subscriptions]
    assert len(subscribed) == len(set(subscribed)), f"a function is subscribed twice: {subscribed}"
    assert functions - set(subscribed) == set(), (
        f"Event Grid functions without a subscription in Bicep: {sorted(functions - set(subscribed))}"
    )
    assert set(subscribed) - functions == set(), (
        f"subscriptions to functions the app lacks: {sorted(set(subscribed) - functions)}"
    )
    for entry in subscriptions:
        assert set(entry) >= {"name", "functionName", "includedEventTypes"}, entry
    for entry in _bicep()["communicationEventSubscriptions"]:
        assert entry["includedEventTypes"], f"{entry['name']}: name the delivery report event types"


def test_every_azure_setting_is_in_bicep_and_every_bicep_setting_is_documented() -> None:
    documentation: dict[str, dict[str, str]] = _sample()["Documentation"]
    bicep_settings = set(_bicep()["functionAppSettings"])
    needed = {name for name, doc in documentation.items() if doc.get("scope") in ("azure", "both")}
    assert needed - bicep_settings == set(), (
        f"documented azure/both settings missing from Bicep: {sorted(needed - bicep_settings)}"
    )
    undocumented = bicep_settings - set(documentation) - set(PLATFORM_SETTINGS)
    assert undocumented == set(), f"Bicep app settings neither documented nor platform: {sorted(undocumented)}"
    local_only = {name for name in bicep_settings if documentation.get(name, {}).get("scope") == "local"}
    assert local_only == set(), f"local-only settings set in Azure: {sorted(local_only)}"
    assert set(PLATFORM_SETTINGS).isdisjoint(documentation), (
        "a platform setting is also documented: drop it from PLATFORM_SETTINGS"
    )
    assert set(PLATFORM_SETTINGS) <= bicep_settings, (
        f"stale platform settings: {sorted(set(PLATFORM_SETTINGS) - bicep_settings)}"
    )


def test_azure_mode_values() -> None:
    settings = _bicep()["functionAppSettings"]
    assert settings["HERALD_MODE"] == "azure"
    assert settings["HERALD_BUS"] == "service-bus"
    for name, value in settings.items():
        assert value is not None, name
        assert isinstance(value, str | Expression), f"{name}: app setting values must be strings"


def test_tables_match_the_app() -> None:
    from shared.container import TABLES

    assert set(_bicep()["storageTables"]) == set(TABLES)
