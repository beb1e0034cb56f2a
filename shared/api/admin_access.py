"""/api/v1/admin: resource policies, party roles and delegations (scope ``admin``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.api.auth import require_scope
from shared.api.problems import Problem
from shared.events.model import MAX_RESOURCE_LENGTH, URN_PATTERN
from shared.identity.authorization import Access, ResourcePolicy, RoleGrant
from shared.identity.parties import InvalidIdentity, parse_party
from shared.identity.tokens import Principal

router = APIRouter(tags=["administration"])
administrator = require_scope("admin")
ResourceUrn = Annotated[str, Path(min_length=1, max_length=MAX_RESOURCE_LENGTH, description="The resource URN")]
ROLE_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


def _identity(value: str) -> str:
    try:
        return str(parse_party(value))
    except InvalidIdentity as error:
        raise ValueError(str(error)) from error


def _resource(resource: str) -> str:
    if not URN_PATTERN.match(resource):
        raise Problem(
            400,
            "Bad Request",
            "the resource must be a URN such as urn:altinn:resource:skattemelding",
            kind="invalid-request",
        )
    return resource


class RoleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    party: str = Field(description="The party the role is held for: org:<number> or person:<number>")
    holder: str = Field(description="Who holds the role")
    role: str = Field(pattern=ROLE_PATTERN)

    @field_validator("party", "holder")
    @classmethod
    def _parties(cls, value: str) -> str:
        return _identity(value)


class DelegationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_party: str = Field(alias="from", description="The party that delegates (a client company)")
    to: str = Field(description="Who acts on its behalf (an accounting firm)")
    roles: list[Annotated[str, Field(pattern=ROLE_PATTERN)]] = Field(min_length=1, max_length=50)

    @field_validator("from_party", "to")
    @classmethod
    def _parties(cls, value: str) -> str:
        return _identity(value)


async def _access(request: Request) -> Access:
    access: Access = (await request.app.state.services()).access
    return access


@router.put("/api/v1/admin/policies/{resource:path}", summary="Put a resource's policy")
async def put_policy(
    request: Request,
    resource: ResourceUrn,
    policy: Annotated[ResourcePolicy, Body()],
    principal: Principal = Depends(administrator),
) -> JSONResponse:
    access = await _access(request)
    await access.policies.put(_resource(resource), policy)
    await access.authorizer.changed()
    return JSONResponse({"resource": resource, **policy.model_dump(mode="json")})


@router.get("/api/v1/admin/policies/{resource:path}", summary="Get a resource's policy")
async def get_policy(
    request: Request, resource: ResourceUrn, principal: Principal = Depends(administrator)
) -> JSONResponse:
    policy = await (await _access(request)).policies.get(_resource(resource))
    if policy is None:
        raise Problem(404, "Not Found", f"{resource} has no policy", kind="policy-not-found")
    return JSONResponse({"resource": resource, **policy.model_dump(mode="json")})


@router.delete("/api/v1/admin/policies/{resource:path}", status_code=204, summary="Delete a resource's policy")
async def delete_policy(
    request: Request, resource: ResourceUrn, principal: Principal = Depends(administrator)
) -> Response:
    access = await _access(request)
    if not await access.policies.delete(_resource(resource)):
        raise Problem(404, "Not Found", f"{resource} has no policy", kind="policy-not-found")
    await access.authorizer.changed()
    return Response(status_code=204)


@router.post("/api/v1/admin/roles", status_code=201, summary="Grant a role for a party")
async def grant_role(
    request: Request, body: Annotated[RoleRequest, Body()], principal: Principal = Depends(administrator)
) -> JSONResponse:
    access = await _access(request)
    await access.roles.grant([RoleGrant(party=body.party, holder=body.holder, role=body.role)])
    await access.authorizer.changed()
    return JSONResponse(body.model_dump(), status_code=201)


@router.delete("/api/v1/admin/roles", status_code=204, summary="Revoke a role")
async def revoke_role(
    request: Request,
    party: Annotated[str, Query(max_length=200)],
    holder: Annotated[str, Query(max_length=200)],
    role: Annotated[str, Query(pattern=ROLE_PATTERN)],
    principal: Principal = Depends(administrator),
) -> Response:
    try:
        grant = RoleGrant(party=_identity(party), holder=_identity(holder), role=role)
    except ValueError as error:
        raise Problem(400, "Bad Request", str(error), kind="invalid-identity") from error
    access = await _access(request)
    await access.roles.revoke([grant])
    await access.authorizer.changed()
    return Response(status_code=204)


@router.get("/api/v1/admin/roles", summary="The roles and delegations a holder has")
async def list_roles(
    request: Request, holder: Annotated[str, Query(max_length=200)], principal: Principal = Depends(administrator)
) -> JSONResponse:
    try:
        holder = _identity(holder)
    except ValueError as error:
        raise Problem(400, "Bad Request", str(error), kind="invalid-identity") from error
    grants = await (await _access(request)).roles.grants_of(holder)
    return JSONResponse(
        {"holder": holder, "grants": [{"party": g.party, "role": g.role, "delegated": g.delegated} for g in grants]}
    )


@router.post("/api/v1/admin/delegations", status_code=201, summary="Delegate roles from a party to another")
async def delegate(
    request: Request, body: Annotated[DelegationRequest, Body()], principal: Principal = Depends(administrator)
) -> JSONResponse:
    access = await _access(request)
    await access.roles.grant(
        [RoleGrant(party=body.from_party, holder=body.to, role=r, delegated=True) for r in body.roles]
    )
    await access.authorizer.changed()
    return JSONResponse({"from": body.from_party, "to": body.to, "roles": body.roles}, status_code=201)


@router.delete("/api/v1/admin/delegations", status_code=204, summary="Withdraw a delegation")
async def withdraw(
    request: Request, body: Annotated[DelegationRequest, Body()], principal: Principal = Depends(administrator)
) -> Response:
    access = await _access(request)
    await access.roles.revoke(
        [RoleGrant(party=body.from_party, holder=body.to, role=r, delegated=True) for r in body.roles]
    )
    await access.authorizer.changed()
    return Response(status_code=204)
