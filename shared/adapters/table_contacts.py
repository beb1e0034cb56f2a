"""The contact registry on Azure Table Storage, loaded through the admin API.

Table ``contacts``: PK ``person`` RK ``<national identity number>`` (name, email, mobile,
reserved); PK ``organization`` RK ``<organisation number>`` (name, notification addresses,
roles with their resources and holders as JSON).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableServiceClient

from shared.adapters.table_notifications import TRANSACTION_OPERATIONS, query_keys
from shared.adapters.table_transactions import submit_transaction
from shared.notifications.ports import Organization, Person, Role, RoleHolder

CONTACTS_TABLE = "contacts"
PERSONS = "person"
ORGANIZATIONS = "organization"


def person_to_json(person: Person) -> dict[str, Any]:
    return {
        "nationalIdentityNumber": person.national_identity_number,
        "name": person.name,
        "emailAddress": person.email_address,
        "mobileNumber": person.mobile_number,
        "reserved": person.reserved,
    }


def organization_to_json(organization: Organization) -> dict[str, Any]:
    return {
        "organizationNumber": organization.organization_number,
        "name": organization.name,
        "emailAddresses": list(organization.email_addresses),
        "mobileNumbers": list(organization.mobile_numbers),
        "roles": [
            {
                "name": role.name,
                "resources": list(role.resources),
                "holders": [
                    {
                        "nationalIdentityNumber": h.national_identity_number,
                        "name": h.name,
                        "emailAddress": h.email_address,
                        "mobileNumber": h.mobile_number,
                    }
                    for h in role.holders
                ],
            }
            for role in organization.roles
        ],
    }


def person_from_json(data: dict[str, Any]) -> Person:
    return Person(
        national_identity_number=data["nationalIdentityNumber"],
        name=data.get("name"),
        email_address=data.get("emailAddress"),
        mobile_number=data.get("mobileNumber"),
        reserved=bool(data.get("reserved", False)),
    )


def organization_from_json(data: dict[str, Any]) -> Organization:
    return Organization(
        organization_number=data["organizationNumber"],
        name=data.get("name"),
        email_addresses=tuple(data.get("emailAddresses") or ()),
        mobile_numbers=tuple(data.get("mobileNumbers") or ()),
        roles=tuple(
            Role(
                name=role["name"],
                resources=tuple(role.get("resources") or ()),
                holders=tuple(
                    RoleHolder(
                        national_identity_number=h["nationalIdentityNumber"],
                        name=h.get("name"),
                        email_address=h.get("emailAddress"),
                        mobile_number=h.get("mobileNumber"),
                    )
                    for h in role.get("holders") or ()
                ),
            )
            for role in data.get("roles") or ()
        ),
    )


class TableContactRegistry:
    def __init__(self, service: TableServiceClient) -> None:
        self._table = service.get_table_client(CONTACTS_TABLE)

    async def _put(self, partition: str, documents: Sequence[tuple[str, dict[str, Any]]]) -> int:
        entities = [
            {"PartitionKey": partition, "RowKey": key, "doc": json.dumps(doc, separators=(",", ":"))}
            for key, doc in dict(documents).items()
        ]
        chunks = [entities[i : i + TRANSACTION_OPERATIONS] for i in range(0, len(entities), TRANSACTION_OPERATIONS)]
        semaphore = asyncio.Semaphore(8)

        async def submit(chunk: list[dict[str, Any]]) -> None:
            async with semaphore:
                await submit_transaction(
                    self._table, [("upsert", entity, {"mode": UpdateMode.REPLACE}) for entity in chunk]
                )

        await asyncio.gather(*(submit(chunk) for chunk in chunks))
        return len(entities)

    async def put_persons(self, persons: Sequence[Person]) -> int:
        return await self._put(PERSONS, [(p.national_identity_number, person_to_json(p)) for p in persons])

    async def put_organizations(self, organizations: Sequence[Organization]) -> int:
        return await self._put(ORGANIZATIONS, [(o.organization_number, organization_to_json(o)) for o in organizations])

    async def persons(self, nins: Sequence[str]) -> dict[str, Person]:
        found = await query_keys(self._table, PERSONS, nins)
        return {e["RowKey"]: person_from_json(json.loads(e["doc"])) for e in found}

    async def organizations(self, numbers: Sequence[str]) -> dict[str, Organization]:
        found = await query_keys(self._table, ORGANIZATIONS, numbers)
        return {e["RowKey"]: organization_from_json(json.loads(e["doc"])) for e in found}
