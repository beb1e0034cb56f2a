"""The function app's functions, indexed once per test session (indexing twice raises in azure-functions)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import azure.functions as func


@lru_cache(maxsize=1)
def functions() -> tuple[func.Function, ...]:
    from function_app import app

    # get_functions() remembers the names it indexed and rejects them the next time (devhost indexes too).
    app.functions_bindings = None
    return tuple(app.get_functions())


def app_settings() -> dict[str, str]:
    """The environment devhost indexes the app with: this process's, plus the committed sample settings
    (``%Setting%`` expressions in triggers, such as the sweeps' schedule, resolve from them)."""
    from devhost.settings import load_local_settings

    environ = dict(os.environ)
    load_local_settings(Path(__file__).resolve().parents[2], environ)
    return environ
