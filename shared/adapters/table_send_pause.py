"""The send pause on Azure Table Storage.

Table ``notificationstate``: PK ``pause`` RK ``<channel>``: send paused until (HTTP 429).
"""

from __future__ import annotations

from datetime import datetime

from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableServiceClient

from shared.adapters.tables import get_or_none
from shared.notifications.model import Channel

PAUSE_TABLE = "notificationstate"


class TableSendPause:
    def __init__(self, service: TableServiceClient) -> None:
        self._table = service.get_table_client(PAUSE_TABLE)

    async def paused_until(self, channel: Channel) -> datetime | None:
        entity = await get_or_none(self._table, "pause", channel.value)
        if entity is None:
            return None
        until: datetime = entity["until"]
        return until

    async def pause(self, channel: Channel, until: datetime) -> None:
        current = await self.paused_until(channel)
        if current is not None and current >= until:
            return
        await self._table.upsert_entity(
            {"PartitionKey": "pause", "RowKey": channel.value, "until": until}, mode=UpdateMode.REPLACE
        )
