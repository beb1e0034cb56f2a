"""Telemetry export, for ``function_app.py`` to start before anything else is imported.

The adapter imports only the standard library until it is called, and the Azure Monitor distro
only when a connection string is set, so importing this costs nothing.
"""

from shared.adapters.azure_monitor import configure_telemetry

__all__ = ["configure_telemetry"]
