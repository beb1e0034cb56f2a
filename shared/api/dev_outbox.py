"""GET /api/v1/dev/outbox: what the local sink captured (local mode only; 404 in azure mode).

Scope ``admin`` (every orderer's messages) or ``notifications.order`` (the caller's own orders' only).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from shared.api.auth import require_any_scope
from shared.api.dependencies import use_cases
from shared.api.openapi import problems
from shared.api.problems import found_or_404
from shared.api.responses import Outbox
from shared.identity.tokens import Principal

router = APIRouter(tags=["development"])
admin_or_orders = require_any_scope("admin", "notifications.order")


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
