"""Admin API of the contact registry (scope admin): bulk PUT of persons and organisations, point reads."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from shared.api.auth import require_scope
from shared.api.openapi import problems
from shared.api.problems import Problem
from shared.api.responses import OrganizationView, PersonView, Stored
from shared.identity.tokens import Principal
from shared.notifications.ports import Organization, Person, Role, RoleHolder

router = APIRouter(tags=["contacts"])
MAX_BULK = 10_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PersonIn(_Strict):
    nationalIdentityNumber: str = Field(pattern=r"^\d{11}$")
    name: str | None = Field(default=None, max_length=300)
    emailAddress: str | None = Field(default=None, max_length=254)
    mobileNumber: str | None = Field(default=None, max_length=20)
    reserved: bool = False


class RoleHolderIn(_Strict):
    nationalIdentityNumber: str = Field(pattern=r"^\d{11}$")
    name: str | None = Field(default=None, max_length=300)
    emailAddress: str | None = Field(default=None, max_length=254)
    mobileNumber: str | None = Field(default=None, max_length=20)


class RoleIn(_Strict):
    name: str = Field(min_length=1, max_length=100)
    resources: list[str] = Field(default_factory=list, max_length=500)
    holders: list[RoleHolderIn] = Field(default_factory=list, max_length=2000)


class OrganizationIn(_Strict):
    organizationNumber: str = Field(pattern=r"^\d{9}$")
    name: str | None = Field(default=None, max_length=300)
    emailAddresses: list[str] = Field(default_factory=list, max_length=100)
    mobileNumbers: list[str] = Field(default_factory=list, max_length=100)
    roles: list[RoleIn] = Field(default_factory=list, max_length=100)


class PersonsIn(_Strict):
    persons: list[PersonIn] = Field(max_length=MAX_BULK)


class OrganizationsIn(_Strict):
    organizations: list[OrganizationIn] = Field(max_length=MAX_BULK)


async def _contacts(request: Request) -> Any:
    services = await request.app.state.services()
    return services.notifications.contacts


@router.put(
    "/api/v1/admin/contacts/persons", summary="Load persons into the contact registry (upsert)", response_model=Stored
)
async def put_persons(
    body: PersonsIn, request: Request, principal: Principal = Depends(require_scope("admin"))
) -> dict[str, int]:
    persons = [
        Person(p.nationalIdentityNumber, p.name, p.emailAddress, p.mobileNumber, p.reserved) for p in body.persons
    ]
    return {"stored": await (await _contacts(request)).put_persons(persons)}


@router.put(
    "/api/v1/admin/contacts/organizations",
    summary="Load organisations into the contact registry (upsert)",
    response_model=Stored,
)
async def put_organizations(
    body: OrganizationsIn, request: Request, principal: Principal = Depends(require_scope("admin"))
) -> dict[str, int]:
    organizations = [
        Organization(
            organization_number=o.organizationNumber,
            name=o.name,
            email_addresses=tuple(o.emailAddresses),
            mobile_numbers=tuple(o.mobileNumbers),
            roles=tuple(
                Role(
                    role.name,
                    tuple(role.resources),
                    tuple(
                        RoleHolder(h.nationalIdentityNumber, h.name, h.emailAddress, h.mobileNumber)
                        for h in role.holders
                    ),
                )
                for role in o.roles
            ),
        )
        for o in body.organizations
    ]
    return {"stored": await (await _contacts(request)).put_organizations(organizations)}


@router.get(
    "/api/v1/admin/contacts/persons/{nin}",
    summary="One person of the contact registry",
    responses={200: {"model": PersonView}, **problems(404)},
)
async def get_person(nin: str, request: Request, principal: Principal = Depends(require_scope("admin"))) -> Any:
    from shared.adapters.table_contacts import person_to_json

    found = await (await _contacts(request)).persons([nin])
    if nin not in found:
        raise Problem(404, "Not Found", f"no person {nin} in the contact registry", kind="contact-not-found")
    return person_to_json(found[nin])


@router.get(
    "/api/v1/admin/contacts/organizations/{number}",
    summary="One organisation of the contact registry",
    responses={200: {"model": OrganizationView}, **problems(404)},
)
async def get_organization(
    number: str, request: Request, principal: Principal = Depends(require_scope("admin"))
) -> Any:
    from shared.adapters.table_contacts import organization_to_json

    found = await (await _contacts(request)).organizations([number])
    if number not in found:
        raise Problem(404, "Not Found", f"no organisation {number} in the contact registry", kind="contact-not-found")
    return organization_to_json(found[number])
