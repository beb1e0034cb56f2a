"""Checkpoints of Herald's timers (when a sweep last completed), in Table Storage."""

from __future__ import annotations

from datetime import datetime

from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableServiceClient

from shared.adapters.tables import get_or_none

STATE_TABLE = "heraldstate"


class TableCheckpoints:
    def __init__(self, service: TableServiceClient) -> None:
        self._table = service.get_table_client(STATE_TABLE)

    async def get(self, name: str) -> datetime | None:
        entity = await get_or_none(self._table, "checkpoint", name)
        if entity is None:
            return None
        value: datetime = entity["at"]
        return value

    async def put(self, name: str, at: datetime) -> None:
        await self._table.upsert_entity(
            {"PartitionKey": "checkpoint", "RowKey": name, "at": at}, mode=UpdateMode.REPLACE
        )
