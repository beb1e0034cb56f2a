"""Tables named ``<prefix><yyyymmdd>``, one a UTC day, for rows kept a retention and then dropped whole:
deleting a table is one request, where deleting its rows would be one a hundred."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

from azure.core.exceptions import ResourceExistsError
from azure.data.tables.aio import TableClient, TableServiceClient


class DayTables:
    def __init__(self, service: TableServiceClient, prefix: str, *, retention: timedelta) -> None:
        self._service = service
        self.prefix = prefix
        self._retention = retention
        self._created: set[str] = set()  # asked to exist by this process: created once, not per write

    def name(self, moment: datetime) -> str:
        return f"{self.prefix}{moment.astimezone(UTC).strftime('%Y%m%d')}"

    def client(self, name: str) -> TableClient:
        """For reads: a day table that does not exist answers ResourceNotFoundError."""
        return self._service.get_table_client(name)

    async def for_writing(self, name: str) -> TableClient:
        """The day table, created on its first write."""
        if name not in self._created:
            with contextlib.suppress(ResourceExistsError):
                await self._service.create_table(name)
            self._created.add(name)
        return self._service.get_table_client(name)

    async def names(self) -> list[str]:
        # Listed whole and filtered here: Azurite ignores a $filter on the table list. The day is checked
        # too, so a prefix that begins another's ("deliveries", "deliveriesx…") never takes its tables.
        return [t.name async for t in self._service.list_tables() if self._is_day(t.name)]

    def _is_day(self, name: str) -> bool:
        day = name[len(self.prefix) :]
        return name.startswith(self.prefix) and len(day) == 8 and day.isdigit()

    async def expire(self, now: datetime) -> int:
        """Drops the day tables older than the retention; how many."""
        cutoff = self.name(now - self._retention)
        dropped = 0
        for name in await self.names():
            if name < cutoff:
                await self._service.delete_table(name)
                self._created.discard(name)
                dropped += 1
        return dropped
