"""The FastAPI application: routers, problem handlers and the OpenAPI document."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from shared.api import (
    admin_access,
    console,
    contacts_admin,
    dev_outbox,
    events_publish,
    events_read,
    health,
    identities,
    notification_orders,
    resources,
    sms_reports,
    subscription_backfills,
    subscriptions,
)
from shared.api.dependencies import ServicesProvider
from shared.api.openapi import HeraldAPI, operation_id
from shared.api.problems import install_problem_handlers

# Paths reachable without a token: liveness and the API's own documentation.
PUBLIC_PATHS = frozenset({"/api/v1/health", "/api/v1/openapi.json", "/api/v1/docs", "/api/v1/docs/oauth2-redirect"})
# Paths authenticated with HTTP basic credentials instead of a bearer token: callbacks from gateways
# that cannot obtain tokens (the SMS gateway's delivery reports). Their dependency sets ``basic_auth``.
BASIC_AUTH_PATHS = frozenset({"/api/v1/notifications/sms/reports"})
# The console's static files and its sign-in configuration (shared/api/console.py): outside /api/v1 and
# public, as they hold no data; the console calls /api/v1 with the signed-in person's own token.
CONSOLE_PATHS = console.PATHS


def create_api(services: ServicesProvider, on_shutdown: Callable[[], Awaitable[None]] | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            await on_shutdown()

    api = HeraldAPI(
        lifespan=lifespan,
        title="Herald",
        version="1.0.0",
        summary="Event hub and notification service for public-sector integration platforms",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        generate_unique_id_function=operation_id,
    )
    api.state.services = services
    install_problem_handlers(api)
    for module in (health, events_publish, events_read, resources, subscriptions, subscription_backfills, admin_access):
        api.include_router(module.router)
    for module in (identities, notification_orders, sms_reports, contacts_admin, dev_outbox):
        api.include_router(module.router)
    api.include_router(console.router)
    return api
