"""Herald built on a test's settings and installed as the process's, as the function triggers find it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from shared.composition import root
from shared.composition.root import Herald, build_herald
from shared.composition.storage import provision
from shared.config import Settings


@asynccontextmanager
async def installed_herald(settings: Settings, **parts: Any) -> AsyncIterator[Herald]:
    """Provisions the storage ``settings`` name, builds Herald on it and installs it, so the function
    triggers (which call ``shared.composition.root.services()``) use it; closes and uninstalls it after.
    ``parts``: what ``build_herald`` takes besides the settings (a host's own clients)."""
    await provision(settings)
    built = build_herald(settings, **parts)
    root.install(built)
    try:
        yield built
    finally:
        await built.close()
        root.uninstall()
