"""Policies, role grants and the authorization version on Table Storage.

- ``policies``: PartitionKey ``policy``, RowKey = the escaped resource, ``document`` the JSON policy.
- ``roles``: PartitionKey = the holder, RowKey = ``<party>|<role>``: the roles a consumer holds
  for one party are one range query, and all its parties (an accounting firm's clients) one
  partition query.
- ``heraldstate`` ``version``/``authorization``: bumped (under ETag) by every change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableServiceClient

from shared.adapters.table_checkpoints import STATE_TABLE
from shared.adapters.tables import delete_existing, escape_key, get_or_none, int64, int_of, put_if_unchanged
from shared.identity.authorization import ResourcePolicy, RoleGrant

POLICIES_TABLE = "policies"
ROLES_TABLE = "roles"


class TablePolicyStore:
    def __init__(self, service: TableServiceClient) -> None:
        self._table = service.get_table_client(POLICIES_TABLE)

    async def get(self, resource: str) -> ResourcePolicy | None:
        entity = await get_or_none(self._table, "policy", escape_key(resource))
        if entity is None:
            return None
        return ResourcePolicy.model_validate_json(entity["document"])

    async def list(self, after: str | None, limit: int) -> tuple[list[tuple[str, ResourcePolicy]], str | None]:
        rows: list[Any] = []
        async for entity in self._table.query_entities(
            "PartitionKey eq 'policy' and RowKey gt @after",
            parameters={"after": after or ""},
            select=["RowKey", "resource", "document"],
            results_per_page=limit + 1,
        ):
            rows.append(entity)
            if len(rows) > limit:
                break
        page = rows[:limit]
        found = [(row["resource"], ResourcePolicy.model_validate_json(row["document"])) for row in page]
        return found, (page[-1]["RowKey"] if len(rows) > limit else None)

    async def put(self, resource: str, policy: ResourcePolicy) -> None:
        entity = {
            "PartitionKey": "policy",
            "RowKey": escape_key(resource),
            "resource": resource,
            "document": policy.model_dump_json(),
            "updated": datetime.now(UTC),
        }
        await self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    async def delete(self, resource: str) -> bool:
        return await delete_existing(self._table, "policy", escape_key(resource))


class TableRoleStore:
    def __init__(self, service: TableServiceClient) -> None:
        self._table = service.get_table_client(ROLES_TABLE)

    async def roles(self, holder: str, party: str) -> frozenset[str]:
        prefix = f"{escape_key(party)}|"
        query = "PartitionKey eq @pk and RowKey gt @lower and RowKey lt @upper"
        parameters = {"pk": escape_key(holder), "lower": prefix, "upper": prefix + "~"}
        return frozenset(
            [e["role"] async for e in self._table.query_entities(query, parameters=parameters, select=["role"])]
        )

    async def grants_of(self, holder: str) -> list[RoleGrant]:
        query = "PartitionKey eq @pk"
        return [
            RoleGrant(party=e["party"], holder=holder, role=e["role"], delegated=bool(e.get("delegated")))
            async for e in self._table.query_entities(query, parameters={"pk": escape_key(holder)})
        ]

    async def grant(self, grants: Sequence[RoleGrant]) -> None:
        for grant in grants:
            await self._table.upsert_entity(
                {
                    "PartitionKey": escape_key(grant.holder),
                    "RowKey": f"{escape_key(grant.party)}|{grant.role}",
                    "party": grant.party,
                    "role": grant.role,
                    "delegated": grant.delegated,
                    "granted": datetime.now(UTC),
                },
                mode=UpdateMode.REPLACE,
            )

    async def revoke(self, grants: Sequence[RoleGrant]) -> None:
        for grant in grants:
            with contextlib.suppress(ResourceNotFoundError):
                await self._table.delete_entity(escape_key(grant.holder), f"{escape_key(grant.party)}|{grant.role}")


class TableVersionCounter:
    def __init__(self, service: TableServiceClient, name: str = "authorization") -> None:
        self._table = service.get_table_client(STATE_TABLE)
        self._name = name

    async def current(self) -> int:
        entity = await get_or_none(self._table, "version", self._name)
        return 0 if entity is None else int_of(entity["n"])

    async def bump(self) -> int:
        for _ in range(50):
            entity = await get_or_none(self._table, "version", self._name)
            next_value = 1 if entity is None else int_of(entity["n"]) + 1
            etag = None if entity is None else entity.metadata["etag"]
            counter = {"PartitionKey": "version", "RowKey": self._name, "n": int64(next_value)}
            if await put_if_unchanged(self._table, counter, etag) is not None:
                return next_value
        raise RuntimeError("the authorization version kept changing")
