"""Exports Herald's traces, metrics and logs to Azure Monitor (Application Insights) in Azure.

The OpenTelemetry API calls in ``shared.telemetry`` record nothing until this installs the Azure
Monitor distro's SDK; it imports the distro lazily, only when a connection string is set.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

CONNECTION_STRING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
AUTHENTICATION_STRING = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"
# Loggers that are chatty at INFO and would otherwise be exported as traces.
NOISY_LOGGERS = (
    "azure.core.pipeline.policies.http_logging_policy",
    "azure.identity",
    "azure.monitor.opentelemetry.exporter",
    "azure.servicebus",
    "uamqp",
)

_lock = threading.Lock()
_configured = False


def _parse_authentication_string(value: str) -> dict[str, str]:
    """``Authorization=AAD;ClientId=<guid>`` → ``{"authorization": "AAD", "clientid": "<guid>"}``."""
    parts: dict[str, str] = {}
    for item in value.split(";"):
        key, sep, val = item.partition("=")
        if sep:
            parts[key.strip().lower()] = val.strip()
    return parts


def configure_telemetry(environ: Mapping[str, str] | None = None) -> bool:
    """Export traces, metrics and logs to Azure Monitor when a connection string is set.

    Returns True when the Azure Monitor distro is (or already was) configured, False when telemetry
    stays off (no connection string: local runs and tests). Safe to call more than once.
    """
    global _configured
    env = os.environ if environ is None else environ
    connection_string = env.get(CONNECTION_STRING, "").strip()
    if not connection_string:
        return False
    with _lock:
        if _configured:
            return True
        from azure.monitor.opentelemetry import configure_azure_monitor  # lazy: heavy, Azure only

        options: dict[str, Any] = {"connection_string": connection_string}
        auth = _parse_authentication_string(env.get(AUTHENTICATION_STRING, ""))
        if auth.get("authorization", "").upper() == "AAD":
            # Application Insights has local auth disabled: ingest with the app's managed identity.
            from azure.identity import ManagedIdentityCredential

            client_id = auth.get("clientid")
            options["credential"] = (
                ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
            )
        configure_azure_monitor(**options)
        for name in NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        _configured = True
        return True
