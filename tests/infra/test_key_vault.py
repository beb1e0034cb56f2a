"""Key Vault: a key that can be provisioned again, and secrets only for the features that use them."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import isodate
import pytest
from tree_sitter import Node

from tests.infra.bicep import INFRA, MAIN, Evaluator, bicep_files, object_properties, parse, resources

VAULT = INFRA / "modules" / "key-vault" / "vault.bicep"
DEPLOYMENT_TIME_FUNCTIONS = re.compile(r"\b(utcNow|newGuid)\s*\(")
REFERENCE = re.compile(r"^@Microsoft\.KeyVault\(VaultName=(?P<vault>[^;]+);SecretName=(?P<secret>[^)]+)\)$")
SECRET_SETTINGS = {
    "HERALD_LINK_SMS_PASSWORD": ("linkSmsPassword", {"smsGateway": "link"}),
    "HERALD_SMS_REPORT_PASSWORD": ("smsReportPassword", {"smsReportUsername": "gateway"}),
    "HERALD_CONTACT_REGISTRY_CLIENT_SECRET": (
        "contactRegistryClientSecret",
        {"contactRegistryUrl": "https://registry.example"},
    ),
    "HERALD_PDP_CLIENT_SECRET": ("pdpClientSecret", {"authorization": "pdp"}),
}
KNOWN = {"keyVaultName": "kv-test"}
# Key Vault's smallest rotation/notification trigger distance and every creation day of a leap-year cycle.
MIN_TRIGGER = timedelta(days=7)
CREATION_DAYS = [datetime(2024, 1, 1) + timedelta(days=n) for n in range(4 * 365 + 1)]


def _text(node: Node) -> str:
    return (node.text or b"").decode()


def _deployment_time_params() -> dict[Path, set[str]]:
    """Per file, parameters whose value is computed at deployment time: a utcNow()/newGuid() default,
    or (through module calls) a value built from such a parameter."""
    tainted: dict[Path, set[str]] = {path: set() for path in bicep_files()}
    for path in bicep_files():
        for node in parse(path).named_children:
            if node.type == "parameter_declaration" and DEPLOYMENT_TIME_FUNCTIONS.search(_text(node)):
                tainted[path].add(_text(node.named_children[0]))
    changed = True
    while changed:
        changed = False
        for path in bicep_files():
            for name, module in Evaluator(path).modules().items():
                body = next(
                    n
                    for n in parse(path).named_children
                    if n.type == "module_declaration" and _text(n.named_children[0]) == name
                )
                params = object_properties(object_properties(body.named_children[-1]).get("params", body))
                for param, value in params.items():
                    text = _text(value)
                    if (
                        DEPLOYMENT_TIME_FUNCTIONS.search(text)
                        or any(re.search(rf"\b{t}\b", text) for t in tainted[path])
                    ) and param not in tainted.setdefault(module["path"], set()):
                        tainted[module["path"]].add(param)
                        changed = True
    return tainted


def test_no_key_attribute_is_computed_at_deployment_time() -> None:
    # Key Vault refuses to change an existing key's creation parameters, so any such value fails the
    # second provision (the postdeploy hook provisions twice on the first `azd up`).
    tainted = _deployment_time_params()
    keys = [
        (path, resource)
        for path in bicep_files()
        for resource in resources(path)
        if resource.type == "Microsoft.KeyVault/vaults/keys"
    ]
    assert keys, "no Key Vault key in infra/"
    for path, key in keys:
        text = key.text
        assert not DEPLOYMENT_TIME_FUNCTIONS.search(text), f"{path.name}:{key.symbol} calls utcNow()/newGuid()"
        used = {name for name in tainted.get(path, set()) if re.search(rf"\b{name}\b", text)}
        assert not used, f"{path.name}:{key.symbol} is computed from deployment-time parameters {sorted(used)}"


def _duration(value: object) -> timedelta | isodate.Duration:
    assert isinstance(value, str), f"{value!r} is not known before deployment"
    return isodate.parse_duration(value)


def _rotation_policy_violations(policy: dict[str, Any]) -> list[str]:
    """Key Vault's bounds on a rotation policy, for a version created on any day of a leap-year cycle (months and
    years vary in length): expiryTime at least 28 days; rotation at least 7 days after creation and at least 7 days
    before expiry; the near-expiry notification at least 7 days before expiry."""
    expiry = _duration(policy["attributes"]["expiryTime"])
    triggers = {str(action["action"]["type"]).lower(): action["trigger"] for action in policy["lifetimeActions"]}
    # The key carries no `exp` (see vault.bicep), and rotating "before expiry" needs one: rotate after creation.
    if set(triggers) != {"rotate", "notify"} or "timeAfterCreate" not in triggers["rotate"]:
        return [f"expected a rotate (timeAfterCreate) and a notify action, got {triggers}"]
    rotate = _duration(triggers["rotate"]["timeAfterCreate"])
    notify = _duration(triggers["notify"]["timeBeforeExpiry"])
    rules: dict[str, Callable[[datetime], bool]] = {
        "expiryTime is at least 28 days": lambda created: (created + expiry) - created >= timedelta(days=28),
        "rotation is at least 7 days after creation": lambda created: (created + rotate) - created >= MIN_TRIGGER,
        "rotation is at least 7 days before expiry": lambda created: created + rotate <= created + expiry - MIN_TRIGGER,
        "notification is at least 7 days before expiry": lambda created: (
            (created + expiry) - ((created + expiry) - notify) >= MIN_TRIGGER
        ),
    }
    violations = []
    for rule, holds in rules.items():
        broken = next((created for created in CREATION_DAYS if not holds(created)), None)
        if broken is not None:
            violations.append(f"{rule}: not for a version created {broken:%Y-%m-%d} ({policy})")
    return violations


def _vault_rotation_policy() -> dict[str, Any]:
    """The key's rotation policy with the values main.bicep deploys (its arguments, else the vault's defaults)."""
    (key,) = [r for r in resources(VAULT) if r.type == "Microsoft.KeyVault/vaults/keys"]
    node = object_properties(object_properties(key.body)["properties"])["rotationPolicy"]
    passed = Evaluator(MAIN, {}, KNOWN).modules()["keyVault"]["params"]
    return dict(Evaluator(VAULT, passed).eval(node, {}))


def test_the_rotation_policy_is_one_key_vault_accepts() -> None:
    policy = _vault_rotation_policy()
    assert _rotation_policy_violations(policy) == []


def _policy(expiry: str, rotate: str, notify: str) -> dict[str, Any]:
    return {
        "attributes": {"expiryTime": expiry},
        "lifetimeActions": [
            {"action": {"type": "rotate"}, "trigger": {"timeAfterCreate": rotate}},
            {"action": {"type": "notify"}, "trigger": {"timeBeforeExpiry": notify}},
        ],
    }


@pytest.mark.parametrize(
    ("policy", "rule"),
    [
        (_policy("P27D", "P7D", "P7D"), "expiryTime is at least 28 days"),
        (_policy("P1Y", "P6D", "P30D"), "rotation is at least 7 days after creation"),
        (_policy("P1Y", "P359D", "P30D"), "rotation is at least 7 days before expiry"),  # 365 - 7 < 359 in 2025
        (_policy("P1Y", "P1Y", "P30D"), "rotation is at least 7 days before expiry"),
        # Two months from 1 February 2025 are 59 days: 30-day months would let this pass.
        (_policy("P2M", "P53D", "P7D"), "rotation is at least 7 days before expiry"),
        (_policy("P1Y", "P11M", "PT167H"), "notification is at least 7 days before expiry"),
    ],
)
def test_a_policy_out_of_bounds_is_reported(policy: dict[str, Any], rule: str) -> None:
    assert [violation.split(":", 1)[0] for violation in _rotation_policy_violations(policy)] == [rule]


def test_the_bounds_accept_the_documented_example() -> None:
    # Key Vault's how-to example policy: expire after 2 years, rotate after 18 months, notify 30 days before.
    assert _rotation_policy_violations(_policy("P2Y", "P18M", "P30D")) == []


def _settings(params: dict[str, str]) -> dict[str, object]:
    return dict(Evaluator(MAIN, params, KNOWN).value("functionAppSettings"))


def test_no_key_vault_reference_without_its_feature() -> None:
    settings = _settings({})
    assert not [
        name for name, value in settings.items() if isinstance(value, str) and value.startswith("@Microsoft.KeyVault")
    ]
    assert not set(SECRET_SETTINGS) & set(settings)
    roles = Evaluator(MAIN, {}, KNOWN).value("roles")
    granted = {entry["roleDefinitionId"] for entry in Evaluator(MAIN, {}, KNOWN).value("identityKeyVaultRoles")}
    assert roles["keyVaultSecretsUser"] not in granted, "Secrets User without any Key Vault reference"


@pytest.mark.parametrize("setting", sorted(SECRET_SETTINGS))
def test_each_feature_brings_its_reference_its_secret_and_the_role(setting: str) -> None:
    secret_param, feature = SECRET_SETTINGS[setting]
    evaluator = Evaluator(MAIN, {**feature, secret_param: "s3cret"}, KNOWN)
    settings = evaluator.value("functionAppSettings")
    references = {
        name: REFERENCE.match(value)
        for name, value in settings.items()
        if isinstance(value, str) and value.startswith("@Microsoft.KeyVault")
    }
    assert set(references) == {setting}, references
    match = references[setting]
    assert match is not None and match["vault"] == KNOWN["keyVaultName"]
    vault = evaluator.modules()["keyVault"]["params"]
    assert vault["name"] == KNOWN["keyVaultName"]
    created = {name for name, value in vault["secrets"].items() if value}
    assert created == {match["secret"]}, f"{setting}: secrets created {created}, reference names {match['secret']}"
    granted = {entry["roleDefinitionId"] for entry in evaluator.value("identityKeyVaultRoles")}
    assert evaluator.value("roles")["keyVaultSecretsUser"] in granted
    # The feature alone (secret set in the vault by hand): the reference and the role, no secret resource.
    without_value = Evaluator(MAIN, feature, KNOWN)
    assert setting in without_value.value("functionAppSettings")
    assert not any(without_value.modules()["keyVault"]["params"]["secrets"].values())
    # A value without the feature creates nothing.
    assert not any(Evaluator(MAIN, {secret_param: "s3cret"}, KNOWN).modules()["keyVault"]["params"]["secrets"].values())


def test_secret_parameters_are_secure_and_come_from_the_azd_environment() -> None:
    import json

    mapped = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    main = Evaluator(MAIN)
    for setting, (param, feature) in SECRET_SETTINGS.items():
        assert "secure" in main.decorators(param), f"{param} must be @secure()"
        assert mapped[param]["value"] == f"${{{setting}=}}", mapped.get(param)
        for feature_param in feature:
            assert feature_param in mapped, f"{feature_param} (turns on {setting}) is not mapped from the azd env"
    assert "secure" in Evaluator(VAULT).decorators("secrets")
