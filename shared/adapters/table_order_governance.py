"""Who may order what, on Azure Table Storage: sender grants and notification counters.

- ``sendergrants``: PK ``<orderer>`` RK ``grants``: the addresses, domains and SMS senders an
  administrator granted the orderer (one JSON document, read once per order that names a sender).
- ``notificationusage``: PK ``<orderer>`` RK ``usage``: the orderer's minute bucket and day count,
  replaced under its ETag by every admitted order, so instances never count past a limit together.
"""

from __future__ import annotations

import json
from datetime import datetime

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableServiceClient

from shared.adapters.tables import delete_existing, escape_key, int64
from shared.notifications.limits import Usage
from shared.notifications.senders import SenderGrants

SENDER_GRANTS_TABLE = "sendergrants"
USAGE_TABLE = "notificationusage"
TABLES = (SENDER_GRANTS_TABLE, USAGE_TABLE)


class TableSenderGrants:
    def __init__(self, service: TableServiceClient) -> None:
        self._table = service.get_table_client(SENDER_GRANTS_TABLE)

    async def get(self, orderer: str) -> SenderGrants | None:
        try:
            entity = await self._table.get_entity(escape_key(orderer), "grants")
        except ResourceNotFoundError:
            return None
        return _grants(entity["document"])

    async def put(self, orderer: str, grants: SenderGrants) -> None:
        document = {
            "emailAddresses": list(grants.email_addresses),
            "emailDomains": list(grants.email_domains),
            "smsSenders": list(grants.sms_senders),
        }
        entity = {
            "PartitionKey": escape_key(orderer),
            "RowKey": "grants",
            "orderer": orderer,
            "document": json.dumps(document),
        }
        await self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    async def delete(self, orderer: str) -> bool:
        return await delete_existing(self._table, escape_key(orderer), "grants")

    async def list(self) -> dict[str, SenderGrants]:
        query = "RowKey eq 'grants'"
        return {e["orderer"]: _grants(e["document"]) async for e in self._table.query_entities(query)}


def _grants(document: str) -> SenderGrants:
    data = json.loads(document)
    return SenderGrants(
        email_addresses=tuple(data.get("emailAddresses", ())),
        email_domains=tuple(data.get("emailDomains", ())),
        sms_senders=tuple(data.get("smsSenders", ())),
    )


class TableUsageStore:
    def __init__(self, service: TableServiceClient) -> None:
        self._table = service.get_table_client(USAGE_TABLE)

    async def get(self, orderer: str) -> tuple[Usage | None, str | None]:
        try:
            entity = await self._table.get_entity(escape_key(orderer), "usage")
        except ResourceNotFoundError:
            return None, None
        count = entity["dayCount"]
        at: datetime = entity["at"]
        usage = Usage(
            debt=float(entity["debt"]),
            at=at,
            day=entity["day"],
            day_count=int(count.value if hasattr(count, "value") else count),
        )
        return usage, entity.metadata["etag"]

    async def put(self, orderer: str, usage: Usage, version: str | None) -> bool:
        entity = {
            "PartitionKey": escape_key(orderer),
            "RowKey": "usage",
            "debt": float(usage.debt),
            "at": usage.at,
            "day": usage.day,
            "dayCount": int64(usage.day_count),
        }
        try:
            if version is None:
                await self._table.create_entity(entity)
            else:
                await self._table.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=version, match_condition=MatchConditions.IfNotModified
                )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            return False
        return True
