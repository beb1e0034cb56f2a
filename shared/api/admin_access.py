"""/api/v1/admin: resource policies, party roles, delegations and orderers' senders (scope ``admin``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.api.auth import require_scope
from shared.api.openapi import problems
from shared.api.problems import Problem
from shared.api.responses import DelegationView, HeldRoles, PolicyView, RoleView, SenderGrantsList, SenderGrantsView
from shared.events.model import MAX_RESOURCE_LENGTH, URN_PATTERN
from shared.identity.authorization import Access, ResourcePolicy, RoleGrant
from shared.identity.parties import InvalidIdentity, parse_party
from shared.identity.tokens import Principal
from shared.notifications.recipients import valid_email
from shared.notifications.senders import SenderGrants, SenderGrantStore

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


@router.put("/api/v1/admin/policies/{resource:path}", summary="Put a resource's policy", response_model=PolicyView)
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


@router.get(
    "/api/v1/admin/policies/{resource:path}",
    summary="Get a resource's policy",
    response_model=PolicyView,
    responses=problems(404),
)
async def get_policy(
    request: Request, resource: ResourceUrn, principal: Principal = Depends(administrator)
) -> JSONResponse:
    policy = await (await _access(request)).policies.get(_resource(resource))
    if policy is None:
        raise Problem(404, "Not Found", f"{resource} has no policy", kind="policy-not-found")
    return JSONResponse({"resource": resource, **policy.model_dump(mode="json")})


@router.delete(
    "/api/v1/admin/policies/{resource:path}",
    status_code=204,
    summary="Delete a resource's policy",
    responses=problems(404),
)
async def delete_policy(
    request: Request, resource: ResourceUrn, principal: Principal = Depends(administrator)
) -> Response:
    access = await _access(request)
    if not await access.policies.delete(_resource(resource)):
        raise Problem(404, "Not Found", f"{resource} has no policy", kind="policy-not-found")
    await access.authorizer.changed()
    return Response(status_code=204)


@router.post("/api/v1/admin/roles", status_code=201, summary="Grant a role for a party", response_model=RoleView)
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


@router.get("/api/v1/admin/roles", summary="The roles and delegations a holder has", response_model=HeldRoles)
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


@router.post(
    "/api/v1/admin/delegations",
    status_code=201,
    summary="Delegate roles from a party to another",
    response_model=DelegationView,
)
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


# ------------------------------------------------------------------------------- sender grants

Orderer = Annotated[str, Path(min_length=1, max_length=200, description="The orderer: org:<number> or person:<number>")]
_DOMAIN = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"


class SenderGrantsRequest(BaseModel):
    """``PUT /api/v1/admin/senders/{orderer}``: replaces everything the orderer may send as."""

    model_config = ConfigDict(extra="forbid")

    emailAddresses: list[Annotated[str, Field(max_length=254)]] = Field(
        default_factory=list, max_length=100, description="fromAddress values the orderer may use"
    )
    emailDomains: list[Annotated[str, Field(max_length=253, pattern=_DOMAIN)]] = Field(
        default_factory=list, max_length=100, description="Domains: any fromAddress at exactly that domain"
    )
    smsSenders: list[Annotated[str, Field(min_length=1, max_length=16)]] = Field(
        default_factory=list, max_length=100, description="senderNumber values (names or numbers) the orderer may use"
    )

    @field_validator("emailAddresses")
    @classmethod
    def _addresses(cls, values: list[str]) -> list[str]:
        for value in values:
            if not valid_email(value):
                raise ValueError(f"'{value}' is not a valid email address")
        return values

    def grants(self) -> SenderGrants:
        return SenderGrants(tuple(self.emailAddresses), tuple(self.emailDomains), tuple(self.smsSenders))


def _grants_json(orderer: str, grants: SenderGrants) -> dict[str, object]:
    return {
        "orderer": orderer,
        "emailAddresses": list(grants.email_addresses),
        "emailDomains": list(grants.email_domains),
        "smsSenders": list(grants.sms_senders),
    }


async def _sender_grants(request: Request) -> SenderGrantStore:
    store: SenderGrantStore = (await request.app.state.services()).notifications.sender_grants
    return store


def _orderer(value: str) -> str:
    try:
        return _identity(value)
    except ValueError as error:
        raise Problem(400, "Bad Request", str(error), kind="invalid-identity") from error


@router.get("/api/v1/admin/senders", summary="Every orderer's granted senders", response_model=SenderGrantsList)
async def list_sender_grants(request: Request, principal: Principal = Depends(administrator)) -> JSONResponse:
    found = await (await _sender_grants(request)).list()
    return JSONResponse({"grants": [_grants_json(orderer, grants) for orderer, grants in sorted(found.items())]})


@router.get(
    "/api/v1/admin/senders/{orderer}",
    summary="The senders an orderer may use",
    response_model=SenderGrantsView,
    responses=problems(404),
)
async def get_sender_grants(
    request: Request, orderer: Orderer, principal: Principal = Depends(administrator)
) -> JSONResponse:
    orderer = _orderer(orderer)
    grants = await (await _sender_grants(request)).get(orderer)
    if grants is None:
        raise Problem(404, "Not Found", f"{orderer} was granted no senders", kind="sender-grants-not-found")
    return JSONResponse(_grants_json(orderer, grants))


@router.put(
    "/api/v1/admin/senders/{orderer}",
    summary="Grant an orderer senders (replaces its grants)",
    response_model=SenderGrantsView,
)
async def put_sender_grants(
    request: Request,
    orderer: Orderer,
    body: Annotated[SenderGrantsRequest, Body()],
    principal: Principal = Depends(administrator),
) -> JSONResponse:
    orderer = _orderer(orderer)
    await (await _sender_grants(request)).put(orderer, body.grants())
    return JSONResponse(_grants_json(orderer, body.grants()))


@router.delete(
    "/api/v1/admin/senders/{orderer}",
    status_code=204,
    summary="Withdraw an orderer's senders",
    responses=problems(404),
)
async def delete_sender_grants(
    request: Request, orderer: Orderer, principal: Principal = Depends(administrator)
) -> Response:
    orderer = _orderer(orderer)
    if not await (await _sender_grants(request)).delete(orderer):
        raise Problem(404, "Not Found", f"{orderer} was granted no senders", kind="sender-grants-not-found")
    return Response(status_code=204)
