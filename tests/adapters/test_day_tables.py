"""Day tables against Azurite: one a UTC day, created on the first write, dropped whole after the retention,
and only those of their own prefix."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

from azure.data.tables.aio import TableServiceClient

from shared.adapters.day_tables import DayTables

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


async def test_day_tables_are_created_once_and_dropped_after_the_retention(azurite) -> None:
    prefix = f"day{uuid.uuid4().hex[:10]}"
    async with TableServiceClient.from_connection_string(azurite.connection_string) as service:
        days = DayTables(service, prefix, retention=timedelta(days=2))
        others = DayTables(service, f"{prefix}x", retention=timedelta(days=2))
        oslo = timezone(timedelta(hours=1))
        # 00:30 in Oslo is the previous day in UTC: the table is the UTC day's.
        assert days.name(datetime(2026, 11, 21, 0, 30, tzinfo=oslo)) == f"{prefix}20261120"
        for age in (0, 1, 2, 3, 5):
            table = await days.for_writing(days.name(NOW - timedelta(days=age)))
            await table.upsert_entity({"PartitionKey": "p", "RowKey": str(age)})
        again = await days.for_writing(days.name(NOW))  # already there: no error, the same rows
        assert [e["RowKey"] async for e in again.list_entities()] == ["0"]
        await (await others.for_writing(others.name(NOW - timedelta(days=5)))).upsert_entity(
            {"PartitionKey": "p", "RowKey": "kept"}
        )

        assert await days.expire(NOW) == 2  # 3 and 5 days old; 2 days old is the retention's first day
        assert sorted(await days.names()) == [f"{prefix}{d}" for d in ("20261119", "20261120", "20261121")]
        assert await others.names() == [f"{prefix}x20261116"]  # another prefix's tables are left alone
        assert await days.expire(NOW) == 0

        for name in [*await days.names(), *await others.names()]:
            await service.delete_table(name)
