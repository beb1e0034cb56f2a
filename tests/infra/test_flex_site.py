"""Rules a Bicep compiler or ARM would only enforce at deployment: what a Flex Consumption site accepts."""

from __future__ import annotations

import re

from tree_sitter import Node

from tests.infra.bicep import INFRA, MAIN, Evaluator, bicep_files, object_properties, resources

FUNCTION_APP = INFRA / "modules" / "web" / "function-app.bicep"

# Functions docs, app settings reference, "Flex Consumption plan deprecations": site and siteConfig
# properties a Flex Consumption site rejects or ignores (ftpsState fails with ARM error 51021).
FLEX_REJECTED_SITE_PROPERTIES = {
    "alwaysOn",
    "containerSize",
    "ftpsState",
    "isReserved",
    "isXenon",
    "javaVersion",
    "linuxFxVersion",
    "netFrameworkVersion",
    "powerShellVersion",
    "functionAppScaleLimit",
    "preWarmedInstanceCount",
    "use32BitWorkerProcess",
    "windowsFxVersion",
    "vnetBackupRestoreEnabled",
    "vnetContentShareEnabled",
    "vnetImagePullEnabled",
    "vnetRouteAllEnabled",
}
# App settings from the same list: Flex takes them from functionAppConfig or has no use for them.
FLEX_REJECTED_APP_SETTINGS = {
    "ENABLE_ORYX_BUILD",
    "FUNCTIONS_EXTENSION_VERSION",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY",
    "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED",
    "FUNCTIONS_WORKER_PROCESS_COUNT",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTOVERVNET",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_DNS_SERVER",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
    "WEBSITE_NODE_DEFAULT_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_SKIP_CONTENTSHARE_VALIDATION",
    "WEBSITE_TIME_ZONE",
    "WEBSITE_VNET_ROUTE_ALL",
}
# Herald configures Azure Monitor itself (shared/adapters/azure_monitor.py); either setting would instrument twice.
DOUBLE_INSTRUMENTATION_SETTINGS = {"PYTHON_ENABLE_OPENTELEMETRY", "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"}
# Functions docs, Flex Consumption "Considerations": the lowest maximum scale is 40, the highest 1000.
FLEX_MAXIMUM_INSTANCES = (40, 1000)


def _flex_sites() -> list[tuple[str, dict[str, Node]]]:
    sites = []
    for path in bicep_files():
        for resource in resources(path):
            if resource.type != "Microsoft.Web/sites":
                continue
            properties = object_properties(object_properties(resource.body).get("properties", resource.body))
            if "functionAppConfig" in properties:
                sites.append((f"{path.name}:{resource.symbol}", properties))
    return sites


def test_the_function_app_is_a_flex_site() -> None:
    assert [name for name, _ in _flex_sites()] == ["function-app.bicep:functionApp"]


def test_flex_site_sets_no_property_flex_rejects() -> None:
    for name, properties in _flex_sites():
        site_config = object_properties(properties["siteConfig"]) if "siteConfig" in properties else {}
        for where, keys in (("properties", properties), ("properties.siteConfig", site_config)):
            rejected = {key for key in keys if key.lower() in {p.lower() for p in FLEX_REJECTED_SITE_PROPERTIES}}
            assert not rejected, f"{name}: {where} sets {sorted(rejected)}, which Flex Consumption rejects"


def test_app_settings_hold_nothing_flex_replaces_or_that_double_instruments() -> None:
    everything = {
        "smsGateway": "link",
        "smsReportUsername": "u",
        "contactRegistryUrl": "https://r",
        "authorization": "pdp",
    }
    for params in ({}, everything):
        settings = set(Evaluator(MAIN, params).value("functionAppSettings"))
        assert not settings & FLEX_REJECTED_APP_SETTINGS, sorted(settings & FLEX_REJECTED_APP_SETTINGS)
        assert not settings & DOUBLE_INSTRUMENTATION_SETTINGS, sorted(settings & DOUBLE_INSTRUMENTATION_SETTINGS)
    # Nor anywhere else in infra (a module could add settings of its own).
    for path in bicep_files():
        for name in DOUBLE_INSTRUMENTATION_SETTINGS:
            assert not re.search(rf"\b{name}\b\s*:", path.read_text()), f"{path.name} sets {name}"


def test_maximum_instance_count_stays_in_the_range_flex_accepts() -> None:
    low, high = FLEX_MAXIMUM_INSTANCES
    module = Evaluator(FUNCTION_APP).decorators("maximumInstanceCount")
    assert (module.get("minValue"), module.get("maxValue")) == (low, high), module
    # main.bicep's parameter that feeds it: same bounds, so a bad value fails before deployment.
    main = Evaluator(MAIN)
    body = next(
        node
        for node in main.root.named_children
        if node.type == "module_declaration" and "functionApp" in (node.named_children[0].text or b"").decode()
    )
    fed_by = (
        object_properties(object_properties(body.named_children[-1])["params"])["maximumInstanceCount"].text or b""
    ).decode()
    decorators = main.decorators(fed_by)
    assert decorators.get("minValue", 0) >= low and decorators.get("maxValue", 10**9) <= high, (fed_by, decorators)
