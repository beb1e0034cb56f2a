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

from shared.adapters.table_transactions import submit_transaction
from shared.adapters.tables import TRANSACTION_OPERATIONS, query_keys
from shared.notifications.ports import Organization, Person

CONTACTS_TABLE = "contacts"
PERSONS = "person"
ORGANIZATIONS = "organization"


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
        return await self._put(PERSONS, [(p.national_identity_number, p.to_json()) for p in persons])

    async def put_organizations(self, organizations: Sequence[Organization]) -> int:
        return await self._put(ORGANIZATIONS, [(o.organization_number, o.to_json()) for o in organizations])

    async def persons(self, nins: Sequence[str]) -> dict[str, Person]:
        found = await query_keys(self._table, PERSONS, nins)
        return {e["RowKey"]: Person.from_json(json.loads(e["doc"])) for e in found}

    async def organizations(self, numbers: Sequence[str]) -> dict[str, Organization]:
        found = await query_keys(self._table, ORGANIZATIONS, numbers)
        return {e["RowKey"]: Organization.from_json(json.loads(e["doc"])) for e in found}
