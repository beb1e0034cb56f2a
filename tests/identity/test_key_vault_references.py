"""A secret setting whose Key Vault reference the platform could not resolve is treated as unset.

App Service leaves the literal ``@Microsoft.KeyVault(...)`` text in the setting when it cannot read
the secret. That text is guessable from public names, so it must never serve as a password or a
client secret: the feature that needs it stays off and the log names the setting, not the value.
"""

from __future__ import annotations

import logging

import httpx
import pytest

from shared.adapters.http_decision_point import HttpDecisionPoint
from shared.composition.notifications import build_notifications
from shared.config import load_settings
from shared.notifications.config import load_notification_settings

REFERENCE = "@Microsoft.KeyVault(VaultName=kv-herald-prod;SecretName=herald-sms-report-password)"
REPORTS = "/api/v1/notifications/sms/reports"


def logged_errors(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR)


def notifications_with(herald, settings):
    """Herald's notification services on the test's storage, with these notification settings."""
    services, stores = herald.services, herald.stores
    services, stores = herald.services, herald.stores
    return build_notifications(
        services.settings,
        stores.tables,
        stores.bus,
        services.publisher,
        settings=settings,
        publishing=services.access.authorizer,
    )


async def test_the_sms_report_endpoint_refuses_the_reference_text_as_password(client, services, caplog, herald):
    env = {"HERALD_SMS_REPORT_USERNAME": "gateway", "HERALD_SMS_REPORT_PASSWORD": f" {REFERENCE}"}
    with caplog.at_level(logging.ERROR):
        settings = load_notification_settings(env)
    services.notifications = notifications_with(herald, settings)
    report = {"reference": "r", "state": "DELIVRD"}
    response = await client.post(REPORTS, json=report, auth=httpx.BasicAuth("gateway", f" {REFERENCE}"))
    assert response.status_code == 401
    assert "HERALD_SMS_REPORT_PASSWORD" in logged_errors(caplog)
    assert "kv-herald-prod" not in caplog.text


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        (
            {
                "HERALD_SMS_GATEWAY": "link",
                "HERALD_LINK_SMS_URL": "http://127.0.0.1:9/sms",
                "HERALD_LINK_SMS_USERNAME": "herald",
                "HERALD_LINK_SMS_PASSWORD": REFERENCE,
            },
            "HERALD_LINK_SMS_PASSWORD",
        ),
        (
            {
                "HERALD_CONTACT_REGISTRY_URL": "http://127.0.0.1:9/registry",
                "HERALD_CONTACT_REGISTRY_AUTHORITY": "https://login.microsoftonline.com/tenant",
                "HERALD_CONTACT_REGISTRY_CLIENT_ID": "00000000-0000-0000-0000-000000000001",
                "HERALD_CONTACT_REGISTRY_CLIENT_SECRET": REFERENCE.lower(),
                "HERALD_CONTACT_REGISTRY_SCOPE": "api://registry/.default",
            },
            "HERALD_CONTACT_REGISTRY_CLIENT_SECRET",
        ),
    ],
)
async def test_notification_adapters_refuse_to_build_on_an_unresolved_reference(services, caplog, env, setting, herald):
    with caplog.at_level(logging.ERROR):
        settings = load_notification_settings(env)
    with pytest.raises(RuntimeError, match=setting.removeprefix("HERALD_").rsplit("_", 1)[-1]):
        notifications_with(herald, settings)
    assert setting in logged_errors(caplog)
    assert "kv-herald-prod" not in caplog.text


def test_the_decision_point_refuses_to_build_on_an_unresolved_reference(caplog):
    env = {
        "HERALD_MODE": "azure",
        "HERALD_AUTHORIZATION": "pdp",
        "HERALD_PDP_URL": "http://127.0.0.1:9/decide",
        "HERALD_PDP_AUTHORITY": "https://login.microsoftonline.com/tenant",
        "HERALD_PDP_CLIENT_ID": "00000000-0000-0000-0000-000000000002",
        "HERALD_PDP_CLIENT_SECRET": REFERENCE,
        "HERALD_PDP_SCOPE": "api://pdp/.default",
    }
    with caplog.at_level(logging.ERROR):
        settings = load_settings(env)
    with pytest.raises(RuntimeError, match="_CLIENT_SECRET"):
        HttpDecisionPoint.from_settings(settings)
    assert "HERALD_PDP_CLIENT_SECRET" in logged_errors(caplog)
    assert "kv-herald-prod" not in caplog.text


def test_a_resolved_secret_is_used_as_is():
    assert load_notification_settings({"HERALD_SMS_REPORT_PASSWORD": "s3cret"}).sms_report_password == "s3cret"
