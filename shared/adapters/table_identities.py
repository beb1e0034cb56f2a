"""Accounts mapped to Herald identities on Table Storage.

``identities``: PartitionKey = the tenant id, RowKey = the object id (both lower-case GUIDs), with
``identity``, ``note``, ``updated`` and ``updatedBy`` (the administrator who made the change).
"""

from __future__ import annotations

from typing import Any

from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableServiceClient

from shared.adapters.tables import delete_existing, escape_key, get_or_none
from shared.identity.accounts import Account, AccountMapping

IDENTITIES_TABLE = "identities"
_FIELDS = ["PartitionKey", "RowKey", "identity", "note", "updated", "updatedBy"]


def _mapping(entity: Any) -> AccountMapping:
    return AccountMapping(
        account=Account(entity["PartitionKey"], entity["RowKey"]),
        identity=entity["identity"],
        note=entity.get("note") or None,
        updated=entity.get("updated"),
        updated_by=entity.get("updatedBy") or None,
    )


class TableAccountMappings:
    def __init__(self, service: TableServiceClient) -> None:
        self._table = service.get_table_client(IDENTITIES_TABLE)

    async def get(self, account: Account) -> AccountMapping | None:
        entity = await get_or_none(self._table, escape_key(account.tenant), escape_key(account.object_id))
        return _mapping(entity) if entity is not None else None

    async def put(self, mapping: AccountMapping) -> None:
        entity: dict[str, Any] = {
            "PartitionKey": escape_key(mapping.account.tenant),
            "RowKey": escape_key(mapping.account.object_id),
            "identity": mapping.identity,
            "note": mapping.note or "",
            "updatedBy": mapping.updated_by or "",
        }
        if mapping.updated is not None:
            entity["updated"] = mapping.updated
        await self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    async def delete(self, account: Account) -> bool:
        return await delete_existing(self._table, escape_key(account.tenant), escape_key(account.object_id))

    async def list(self, after: Account | None, limit: int) -> tuple[list[AccountMapping], Account | None]:
        if after is None:
            query, parameters = "PartitionKey ge @empty", {"empty": ""}
        else:
            # The SDK substitutes a parameter only between spaces: "( … @object )".
            query = "( PartitionKey eq @tenant and RowKey gt @object ) or PartitionKey gt @tenant"
            parameters = {"tenant": escape_key(after.tenant), "object": escape_key(after.object_id)}
        rows: list[Any] = []
        async for entity in self._table.query_entities(
            query, parameters=parameters, select=_FIELDS, results_per_page=limit + 1
        ):
            rows.append(entity)
            if len(rows) > limit:
                break
        page = [_mapping(row) for row in rows[:limit]]
        return page, (page[-1].account if len(rows) > limit else None)
