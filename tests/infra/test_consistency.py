"""What the function app uses is declared in Bicep, and nothing in Bicep is unused.

Queues and Event Grid-triggered functions come FROM THE APP (``function_app.app.get_functions()``),
settings from ``local.settings.sample.json`` (its ``Documentation`` scopes), tables from
``shared.composition.storage.TABLES``; the Bicep side is evaluated from ``infra/main.bicep`` (variables and module
parameters) with every optional feature turned on, so conditional settings are checked too. The roles
each connection needs are derived from the same places.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import pytest

from tests.infra.bicep import INFRA, MAIN, ROOT, Evaluator, Expression, object_properties, resources
from tests.support.functions_index import functions

SAMPLE_SETTINGS = ROOT / "local.settings.sample.json"

# App settings Bicep sets that are not Herald's own (so not in local.settings.sample.json).
PLATFORM_SETTINGS: dict[str, str] = {
    "AzureWebJobsStorage__accountName": "Functions host storage (leases, timers), identity-based: replaces AzureWebJobsStorage.",
    "AzureWebJobsStorage__credential": "Functions host storage uses the managed identity.",
    "AzureWebJobsStorage__clientId": "Functions host storage uses the user-assigned identity.",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "Host and shared/adapters/azure_monitor.py export to this Application Insights resource.",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Entra ID ingestion (local auth is disabled) with the user-assigned identity.",
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


# Every optional feature on, so every conditional app setting and role is evaluated.
EVERY_FEATURE = {
    "smsGateway": "link",
    "smsReportUsername": "gateway",
    "contactRegistryUrl": "https://registry.example",
    "authorization": "pdp",
    "enableCustomTopic": True,
    "deployEventSubscriptions": True,
}
IDENTITY = "identity.outputs.principalId"


@cache
def _evaluator() -> Evaluator:
    return Evaluator(MAIN, EVERY_FEATURE, {"keyVaultName": "kv-test"})


@cache
def _bicep() -> dict[str, Any]:
    return _evaluator().variables()


@cache
def _modules() -> dict[str, dict[str, Any]]:
    return _evaluator().modules()


def _role(name: str) -> str:
    return str(_bicep()["roles"][name])


def _identity_roles(module: str, parameter: str = "roleAssignments") -> list[dict[str, Any]]:
    return [
        entry
        for entry in _modules()[module]["params"].get(parameter, [])
        if isinstance(entry["principalId"], Expression) and entry["principalId"].text == IDENTITY
    ]


def _principal_of(client_id: Any) -> str:
    """The identity behind a ``__clientId`` setting (the user-assigned identity's client id)."""
    assert isinstance(client_id, Expression) and client_id.text == "identity.outputs.clientId", client_id
    return IDENTITY


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


def test_queue_names_match_the_composition_roots() -> None:
    from shared.composition.storage import QUEUES

    declared = {queue["name"] for queue in _bicep()["serviceBusQueues"]}
    assert set(QUEUES) == declared


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
    subscriptions = _bicep()["communicationEventSubscriptions"]
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
    # The postdeploy hook waits for exactly these functions (Bicep output, not a second list).
    assert _bicep()["eventGridFunctionNames"] == subscribed
    output = next(
        node
        for node in _evaluator().root.named_children
        if node.type == "output_declaration" and b"HERALD_EVENT_GRID_FUNCTIONS" in (node.text or b"")
    )
    assert _evaluator().eval(output.named_children[-1], {}) == ",".join(subscribed)


def test_custom_topic_delivers_to_a_queue_the_app_triggers_on() -> None:
    topic = _modules()["customTopic"]["params"]
    queue = topic["serviceBusQueueName"]
    assert queue in {entry["name"] for entry in _bicep()["serviceBusQueues"]}
    triggered = {_resolve(binding.queue_name) for _, binding in _bindings("serviceBusTrigger")}
    assert queue in triggered, f"nothing in the app triggers on {queue}, where the custom topic delivers"
    assert topic["deliveryRoleDefinitionId"] == _role("serviceBusDataSender")


def test_every_queue_the_app_triggers_on_grants_the_trigger_role_to_its_connection() -> None:
    # Functions docs: the trigger needs Azure Service Bus Data Receiver or Data Owner; only Owner's
    # Manage rights let the scale controller read the queue length (target-based scaling).
    settings = _bicep()["functionAppSettings"]
    owned = {
        (entry["queueName"], entry["principalId"].text)
        for entry in _identity_roles("serviceBus", "queueRoleAssignments")
        if entry["roleDefinitionId"] == _role("serviceBusDataOwner")
    }
    for name, binding in _bindings("serviceBusTrigger"):
        principal = _principal_of(settings[f"{binding.connection}__clientId"])
        queue = _resolve(binding.queue_name)
        assert (queue, principal) in owned, f"{name}: {binding.connection}'s identity lacks Data Owner on {queue}"
    # Owner covers sending: the narrower roles on the namespace would only be redundant for the app.
    namespace_roles = {entry["roleDefinitionId"] for entry in _identity_roles("serviceBus")}
    assert not namespace_roles, f"namespace-wide roles for the app's identity: {namespace_roles}"
    declared = {queue["name"] for queue in _bicep()["serviceBusQueues"]}
    assert {queue for queue, _ in owned} <= declared


def test_queue_settings_come_from_the_shared_file() -> None:
    import json

    shared = json.loads((INFRA / "service-bus-queues.json").read_text())
    assert _bicep()["serviceBusQueues"] == shared
    assert _modules()["serviceBus"]["params"]["queues"] == shared
    # The namespace module maps each property it sets; everything it sets is in the file.
    (queues,) = [
        r for r in resources(INFRA / "modules" / "service-bus" / "namespace.bicep") if r.symbol == "namespaceQueues"
    ]
    properties = object_properties(object_properties(queues.body)["properties"])
    read = {
        (node.text or b"").decode().removeprefix("queue.")
        for node in properties.values()
        if (node.text or b"").startswith(b"queue.")
    }
    assert read <= set(QUEUE_PROPERTIES), read - set(QUEUE_PROPERTIES)


def test_storage_settings_come_with_their_data_roles() -> None:
    settings = _bicep()["functionAppSettings"]
    granted = {(entry["roleDefinitionId"]) for entry in _identity_roles("storage")}
    needs = {
        "AzureWebJobsStorage__accountName": "storageBlobDataOwner",
        "HeraldStorage__tableServiceUri": "storageTableDataContributor",
        "HeraldStorage__queueServiceUri": "storageQueueDataContributor",
    }
    for setting, role in needs.items():
        assert setting in settings, setting
        prefix = setting.split("__", 1)[0]
        assert _principal_of(settings[f"{prefix}__clientId"]) == IDENTITY
        assert _role(role) in granted, f"{setting} needs {role} on the storage account"


def test_key_vault_settings_come_with_their_roles() -> None:
    settings = _bicep()["functionAppSettings"]
    granted = {entry["roleDefinitionId"] for entry in _identity_roles("keyVault")}
    assert "HERALD_SECRET_KEY_URI" in settings
    assert _role("keyVaultCryptoUser") in granted, "HERALD_SECRET_KEY_URI needs Key Vault Crypto User"
    references = [
        name
        for name, value in settings.items()
        if isinstance(value, str | Expression) and "@Microsoft.KeyVault(" in str(getattr(value, "text", value))
    ]
    assert references, "every feature is on: the secret settings must be Key Vault references"
    assert _role("keyVaultSecretsUser") in granted, f"{references} need Key Vault Secrets User"


def test_event_grid_topics_dead_letter_to_a_container_their_identity_may_write() -> None:
    containers = _modules()["storage"]["params"]["blobContainerNames"]
    for module in ("communicationEvents", "customTopic"):
        params = _modules()[module]["params"]
        assert params["deadLetterContainerName"] in containers, f"{module}: no such container"
        assert params["deadLetterRoleDefinitionId"] == _role("storageBlobDataContributor")
        assert params["deadLetterStorageAccountName"].text == "storage.outputs.name"


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
    from shared.composition.storage import TABLES

    assert set(_bicep()["storageTables"]) == set(TABLES)
