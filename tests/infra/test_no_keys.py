"""Identity only: no keys, no connection strings, local auth off wherever the resource supports it."""

from __future__ import annotations

import re

import pytest

from tests.infra.bicep import INFRA, ROOT, bicep_files, variables

# APPLICATIONINSIGHTS_CONNECTION_STRING names the ingestion endpoint and resource; with local auth
# disabled on the component it grants nothing without an Entra ID token, so it is the one
# "connection string" the platform needs.
ALLOWED_CONNECTION_SETTINGS = {"APPLICATIONINSIGHTS_CONNECTION_STRING"}

FORBIDDEN = {
    "listKeys(": "reads an access key",
    "listConnectionStrings(": "reads a connection string",
    "AccountKey=": "storage account key",
    "SharedAccessKey": "Service Bus / Event Grid SAS key",
    "accessKey=": "Communication Services access key",
    "connectionStrings:": "site connection strings",
    "@secure() output": "secret output",
}


def _all_bicep() -> dict[str, str]:
    return {str(path.relative_to(ROOT)): path.read_text() for path in bicep_files()}


def _resource_blocks(text: str, resource_type: str) -> list[str]:
    """The bodies of the resources of one type (from the declaration to the next top-level line)."""
    blocks = []
    # `existing` declarations only refer to a resource declared elsewhere.
    for match in re.finditer(
        rf"^resource \w+ '{re.escape(resource_type)}@[^']+'(?! existing)", text, flags=re.MULTILINE
    ):
        end = re.search(r"^\S", text[match.end() :], flags=re.MULTILINE)
        blocks.append(text[match.start() : match.end() + (end.start() if end else len(text))])
    return blocks


@pytest.mark.parametrize(("needle", "why"), FORBIDDEN.items())
def test_nothing_forbidden(needle: str, why: str) -> None:
    offenders = [name for name, text in _all_bicep().items() if needle in text]
    assert not offenders, f"{needle!r} ({why}) in {offenders}"


def test_no_connection_string_app_settings() -> None:
    settings = variables()["functionAppSettings"]
    offenders = [
        name
        for name in settings
        if re.search(r"connection_?string", name, flags=re.IGNORECASE) and name not in ALLOWED_CONNECTION_SETTINGS
    ]
    assert not offenders
    # Connection prefixes are identity-based: never the bare prefix (which would hold a connection string).
    prefixes = {name.split("__", 1)[0] for name in settings if "__" in name}
    assert not prefixes & set(settings), f"bare connection prefixes in app settings: {prefixes & set(settings)}"
    credentials = {name: value for name, value in settings.items() if name.endswith("__credential")}
    assert credentials and set(credentials.values()) == {"managedidentity"}
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"].text.endswith("Authorization=AAD'")


@pytest.mark.parametrize(
    ("resource_type", "setting"),
    [
        ("Microsoft.Storage/storageAccounts", "allowSharedKeyAccess: false"),
        ("Microsoft.ServiceBus/namespaces", "disableLocalAuth: true"),
        ("Microsoft.Insights/components", "DisableLocalAuth: true"),
        ("Microsoft.OperationalInsights/workspaces", "disableLocalAuth: true"),
        ("Microsoft.Communication/communicationServices", "disableLocalAuth: true"),
        ("Microsoft.EventGrid/topics", "disableLocalAuth: true"),
        ("Microsoft.KeyVault/vaults", "enableRbacAuthorization: true"),
    ],
)
def test_local_auth_disabled(resource_type: str, setting: str) -> None:
    blocks = [block for text in _all_bicep().values() for block in _resource_blocks(text, resource_type)]
    assert blocks, f"no {resource_type} in infra/"
    for block in blocks:
        assert setting in block, f"{resource_type} lacks {setting!r}"


def test_function_app_uses_identity_for_deployment_storage() -> None:
    text = (INFRA / "modules" / "web" / "function-app.bicep").read_text()
    assert "type: 'UserAssignedIdentity'" in text
    assert "type: 'UserAssigned'" in text
    for publishing in ("name: 'ftp'", "name: 'scm'"):
        assert publishing in text, "basic publishing credentials must be disabled"


def test_role_assignment_names_are_deterministic() -> None:
    for name, text in _all_bicep().items():
        for block in _resource_blocks(text, "Microsoft.Authorization/roleAssignments") or []:
            assert re.search(r"name: guid\(", block), f"{name}: role assignment without a guid() name"
    # Also nested (looped) role assignment resources inside modules.
    for name, text in _all_bicep().items():
        for match in re.finditer(
            r"'Microsoft.Authorization/roleAssignments@[^']+' = \[\s*for [^:]+:\s*\{\s*name: (\S+)", text
        ):
            assert match.group(1).startswith("guid("), f"{name}: role assignment named {match.group(1)}"


def test_every_data_plane_role_is_assigned_to_the_identity() -> None:
    from tests.infra.bicep import Evaluator

    evaluator = Evaluator(params={"smsGateway": "link"})
    roles = evaluator.value("roles")
    names = {guid: name for name, guid in roles.items()}
    identity = "identity.outputs.principalId"
    assignments = [
        entry
        for module in evaluator.modules().values()
        for parameter in ("roleAssignments", "queueRoleAssignments")
        for entry in module["params"].get(parameter, []) or []
        if isinstance(entry, dict) and getattr(entry.get("principalId"), "text", None) == identity
    ]
    identity_roles = {names.get(entry["roleDefinitionId"], entry["roleDefinitionId"]) for entry in assignments}
    needed = {
        "storageBlobDataOwner",
        "storageTableDataContributor",
        "storageQueueDataContributor",
        "serviceBusDataOwner",
        "monitoringMetricsPublisher",
        "keyVaultCryptoUser",
        "keyVaultSecretsUser",
        "contributor",
    }
    assert needed <= identity_roles, f"missing for the managed identity: {needed - identity_roles}"
    assert identity_roles <= set(roles)
