"""Admin API of the contact registry (scope admin): bulk PUT of persons and organisations, point reads."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from shared.api.auth import require_scope
from shared.api.contacts_schemas import OrganizationsIn, PersonsIn
from shared.api.dependencies import use_cases
from shared.api.openapi import problems
from shared.api.problems import found_or_404
from shared.api.responses import OrganizationView, PersonView, Stored
from shared.identity.tokens import Principal
from shared.notifications.contacts import ContactAdmin
from shared.notifications.ports import Organization, Person, Role, RoleHolder

router = APIRouter(tags=["contacts"])


async def _contacts(request: Request) -> ContactAdmin:
    services = await use_cases(request)
    contacts: ContactAdmin = services.notifications.contacts
    return contacts


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
            parent_organization_number=o.parentOrganizationNumber,
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
    person = await (await _contacts(request)).person(nin)
    return found_or_404(person, f"no person {nin} in the contact registry", "contact-not-found").to_json()


@router.get(
    "/api/v1/admin/contacts/organizations/{number}",
    summary="One organisation of the contact registry",
    responses={200: {"model": OrganizationView}, **problems(404)},
)
async def get_organization(
    number: str, request: Request, principal: Principal = Depends(require_scope("admin"))
) -> Any:
    organization = await (await _contacts(request)).organization(number)
    return found_or_404(
        organization, f"no organisation {number} in the contact registry", "contact-not-found"
    ).to_json()
