"""GET /api/v1/dev/outbox: what the local sink captured (local mode only; 404 in azure mode).

Scope ``admin`` (every orderer's messages) or ``notifications.order`` (the caller's own orders' only).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.api.auth import require_scope
from shared.api.dependencies import use_cases
from shared.api.openapi import problems
from shared.api.problems import Problem, found_or_404
from shared.api.responses import Outbox
from shared.identity.tokens import Principal

router = APIRouter(tags=["development"])
_bearer = HTTPBearer(auto_error=False)
_admin = require_scope("admin")
_orders = require_scope("notifications.order")


async def admin_or_orders(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> Principal:
    try:
        return await _admin(request, credentials)
    except Problem as problem:
        if problem.status != 403:
            raise
    try:
        return await _orders(request, credentials)
    except Problem as problem:
        if problem.status == 403:
            problem.detail = "the token lacks the scope 'admin' or 'notifications.order'"
        raise


admin_or_orders.required_scope = "admin|notifications.order"  # type: ignore[attr-defined]


@router.get(
    "/api/v1/dev/outbox",
    summary="Messages the local email/SMS sink captured (local mode only)",
    responses={200: {"model": Outbox}, **problems(404)},
)
async def dev_outbox(request: Request, principal: Principal = Depends(admin_or_orders)) -> Any:
    services = await use_cases(request)
    outbox = found_or_404(
        services.notifications.dev_outbox if services.settings.local else None,
        "the outbox exists in local mode with the local sink only",
        "no-outbox",
    )
    # An orderer sees what Herald sent for its own orders, never another orderer's recipients or texts.
    return {"messages": outbox.captured(None if "admin" in principal.scopes else principal.subject)}
