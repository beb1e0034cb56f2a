"""The one dependency every route has: the use cases (``shared.services.Services``), typed.

The app is given a provider (the composition root's, or a test's) and routes ask for the use cases
through ``use_cases``; how they were built stays out of sight.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from shared.services import Services

ServicesProvider = Callable[[], Awaitable[Services]]


async def use_cases(request: Request) -> Services:
    provider: ServicesProvider = request.app.state.services
    return await provider()
