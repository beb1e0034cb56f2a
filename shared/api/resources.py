"""GET /api/v1/resources: the resources the caller may reach (scope ``events.read`` or ``events.subscribe``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from shared.api.auth import require_any_scope
from shared.api.dependencies import use_cases
from shared.api.responses import AccessibleResources
from shared.identity.authorization import (
    MAX_LISTED_POLICY_PAGES,
    POLICY_PAGE,
    Access,
    ResourceAccess,
    herald_resources_of,
)
from shared.identity.tokens import Principal

router = APIRouter(tags=["events"])
reader = require_any_scope("events.read", "events.subscribe")
LISTED_POLICIES = POLICY_PAGE * MAX_LISTED_POLICY_PAGES


def _access_json(access: ResourceAccess) -> dict[str, Any]:
    return {
        "resource": access.resource,
        "publish": access.publish,
        "read": access.read.value,
        "subscribe": access.subscribe.value,
    }


@router.get(
    "/api/v1/resources",
    summary="The resources you may publish to, read or subscribe to",
    description=(
        "Each resource whose policy lets the caller publish, or read or subscribe to at least some of its events: "
        "`all` as an owner, `some` through a rule naming `self` (the events about the caller) or a role the caller "
        "holds for some party (the events about that party), and Herald's own resources about the caller "
        "(its subscriptions' events, its notifications' statuses). With an external decision point "
        "(`HERALD_AUTHORIZATION=pdp`) Herald's policies decide nothing and the decision point cannot be asked "
        'for a list: the answer has `"complete": false`, lists only Herald\'s own resources about the caller '
        "with `read` and `subscribe` `unknown`, and every read is still decided by the decision point. "
        f"Only the first {LISTED_POLICIES:,} policies are looked at: past them the answer has "
        '`"complete": false` too.'
    ),
    response_model=AccessibleResources,
)
async def list_resources(request: Request, principal: Principal = Depends(reader)) -> JSONResponse:
    access: Access = (await use_cases(request)).access
    found = await access.accessible(principal.subject)
    if found is None:
        unknown = [
            {"resource": resource, "publish": False, "read": "unknown", "subscribe": "unknown"}
            for resource in herald_resources_of(principal.subject)
        ]
        return JSONResponse({"authorization": "pdp", "complete": False, "resources": unknown})
    resources = [_access_json(a) for a in found.resources]
    return JSONResponse({"authorization": "local", "complete": found.complete, "resources": resources})
