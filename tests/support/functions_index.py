"""The function app's functions, indexed once per test session (indexing twice raises in azure-functions)."""

from __future__ import annotations

from functools import lru_cache

import azure.functions as func


@lru_cache(maxsize=1)
def functions() -> tuple[func.Function, ...]:
    from function_app import app

    # get_functions() remembers the names it indexed and rejects them the next time (devhost indexes too).
    app.functions_bindings = None
    return tuple(app.get_functions())
