"""/api/v1/admin: resource policies, party roles, delegations and orderers' senders (scope ``admin``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.api.auth import require_scope
from shared.api.dependencies import use_cases
from shared.api.openapi import NEXT_LINK, problems
from shared.api.paging import next_link
from shared.api.problems import Problem, found_or_404, not_found
from shared.api.responses import (
    DelegationView,
    HeldRoles,
    PolicyPage,
    PolicyView,
    RoleView,
    SenderGrantsList,
    SenderGrantsView,
)
from shared.cursors import seal, unseal
from shared.events.model import MAX_RESOURCE_LENGTH
from shared.identity.authorization import Access, ResourcePolicy, RoleGrant
from shared.identity.parties import InvalidIdentity, parse_party
from shared.identity.tokens import Principal
from shared.notifications.recipients import valid_email
from shared.notifications.senders import SenderGrantAdmin, SenderGrants
from shared.urns import URN_PATTERN

router = APIRouter(tags=["administration"])
administrator = require_scope("admin")
ResourceUrn = Annotated[str, Path(min_length=1, max_length=MAX_RESOURCE_LENGTH, description="The resource URN")]
ROLE_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


def _identity(value: str) -> str:
    try:
        return str(parse_party(value))
    except InvalidIdentity as error:
        raise ValueError(str(error)) from error


def _party(value: str) -> str:
    """A party named in the path or the query: a 400 problem when it is not one."""
    try:
        return _identity(value)
    except ValueError as error:
        raise Problem(400, "Bad Request", str(error), kind="invalid-identity") from error


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

    def grants(self) -> list[RoleGrant]:
        return [RoleGrant(party=self.from_party, holder=self.to, role=r, delegated=True) for r in self.roles]


def _policy_json(resource: str, policy: ResourcePolicy) -> JSONResponse:
    return JSONResponse({"resource": resource, **policy.model_dump(mode="json")})


def _no_policy(resource: str) -> tuple[str, str]:
    """The 404's detail and kind for a resource without a policy."""
    return f"{resource} has no policy", "policy-not-found"


async def _access(request: Request) -> Access:
    access: Access = (await use_cases(request)).access
    return access


_CURSOR = "p1"


def _policy_cursor(key: str) -> str:
    return seal(_CURSOR, key)


def _policy_key(token: str) -> str:
    """The stored key a cursor names; a 400 problem for a cursor Herald did not issue."""
    key = unseal(_CURSOR, token)
    if key is None:
        raise Problem(400, "Bad Request", "'after' is not a cursor issued by Herald", kind="cursor-invalid")
    return key


@router.get(
    "/api/v1/admin/policies",
    summary="List the resource policies",
    description='Every stored policy, a page at a time: the `Link` header\'s `rel="next"` URL reads on. '
    "Herald's built-in policies of its own resources are not stored and not listed.",
    response_model=PolicyPage,
    responses={200: {"headers": NEXT_LINK}},
)
async def list_policies(
    request: Request,
    after: Annotated[str | None, Query(max_length=1500, description="The cursor from the previous page's Link")] = None,
    size: Annotated[int, Query(ge=1, le=1000)] = 100,
    principal: Principal = Depends(administrator),
) -> JSONResponse:
    key = _policy_key(after) if after is not None else None
    found, last = await (await _access(request)).list_policies(key, size)
    body = [{"resource": resource, **policy.model_dump(mode="json")} for resource, policy in found]
    token = _policy_cursor(last) if last is not None else None
    return JSONResponse({"count": len(body), "policies": body}, headers=await next_link(request, token))


# 404: a path the router cannot match (a line break in the resource), as for GET and DELETE.
@router.put(
    "/api/v1/admin/policies/{resource:path}",
    summary="Put a resource's policy",
    response_model=PolicyView,
    responses=problems(404),
)
async def put_policy(
    request: Request,
    resource: ResourceUrn,
    policy: Annotated[ResourcePolicy, Body()],
    principal: Principal = Depends(administrator),
) -> JSONResponse:
    await (await _access(request)).put_policy(_resource(resource), policy)
    return _policy_json(resource, policy)


@router.get(
    "/api/v1/admin/policies/{resource:path}",
    summary="Get a resource's policy",
    response_model=PolicyView,
    responses=problems(404),
)
async def get_policy(
    request: Request, resource: ResourceUrn, principal: Principal = Depends(administrator)
) -> JSONResponse:
    policy = await (await _access(request)).policy(_resource(resource))
    return _policy_json(resource, found_or_404(policy, *_no_policy(resource)))


@router.delete(
    "/api/v1/admin/policies/{resource:path}",
    status_code=204,
    summary="Delete a resource's policy",
    responses=problems(404),
)
async def delete_policy(
    request: Request, resource: ResourceUrn, principal: Principal = Depends(administrator)
) -> Response:
    if not await (await _access(request)).delete_policy(_resource(resource)):
        raise not_found(*_no_policy(resource))
    return Response(status_code=204)


@router.post("/api/v1/admin/roles", status_code=201, summary="Grant a role for a party", response_model=RoleView)
async def grant_role(
    request: Request, body: Annotated[RoleRequest, Body()], principal: Principal = Depends(administrator)
) -> JSONResponse:
    await (await _access(request)).grant([RoleGrant(party=body.party, holder=body.holder, role=body.role)])
    return JSONResponse(body.model_dump(), status_code=201)


@router.delete("/api/v1/admin/roles", status_code=204, summary="Revoke a role")
async def revoke_role(
    request: Request,
    party: Annotated[str, Query(max_length=200)],
    holder: Annotated[str, Query(max_length=200)],
    role: Annotated[str, Query(pattern=ROLE_PATTERN)],
    principal: Principal = Depends(administrator),
) -> Response:
    grant = RoleGrant(party=_party(party), holder=_party(holder), role=role)
    await (await _access(request)).revoke([grant])
    return Response(status_code=204)


@router.get("/api/v1/admin/roles", summary="The roles and delegations a holder has", response_model=HeldRoles)
async def list_roles(
    request: Request, holder: Annotated[str, Query(max_length=200)], principal: Principal = Depends(administrator)
) -> JSONResponse:
    holder = _party(holder)
    grants = await (await _access(request)).grants_of(holder)
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
    await (await _access(request)).grant(body.grants())
    return JSONResponse({"from": body.from_party, "to": body.to, "roles": body.roles}, status_code=201)


@router.delete("/api/v1/admin/delegations", status_code=204, summary="Withdraw a delegation")
async def withdraw(
    request: Request, body: Annotated[DelegationRequest, Body()], principal: Principal = Depends(administrator)
) -> Response:
    await (await _access(request)).revoke(body.grants())
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


def _no_grants(orderer: str) -> tuple[str, str]:
    """The 404's detail and kind for an orderer granted no senders."""
    return f"{orderer} was granted no senders", "sender-grants-not-found"


async def _sender_grants(request: Request) -> SenderGrantAdmin:
    grants: SenderGrantAdmin = (await use_cases(request)).notifications.sender_grants
    return grants


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
    orderer = _party(orderer)
    grants = await (await _sender_grants(request)).get(orderer)
    return JSONResponse(_grants_json(orderer, found_or_404(grants, *_no_grants(orderer))))


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
    orderer = _party(orderer)
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
    orderer = _party(orderer)
    if not await (await _sender_grants(request)).delete(orderer):
        raise not_found(*_no_grants(orderer))
    return Response(status_code=204)
