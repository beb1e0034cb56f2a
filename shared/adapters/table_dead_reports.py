"""Dead delivery reports on Azure Table Storage.

Table ``notificationreports``: PK ``<channel>`` RK ``<reference>``: unmatched delivery reports
(attempt counter; ``parked`` once over the bound).
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableServiceClient

from shared.adapters.tables import escape_key, etag_of, int_of
from shared.notifications.model import Channel
from shared.notifications.ports import ReportAttempt

REPORTS_TABLE = "notificationreports"


class TableDeadReports:
    def __init__(self, service: TableServiceClient) -> None:
        self._table = service.get_table_client(REPORTS_TABLE)

    async def record_attempt(
        self, channel: Channel, reference: str, payload: str, now: datetime, *, max_attempts: int, window: timedelta
    ) -> ReportAttempt:
        key = escape_key(reference)[:512]
        for _ in range(10):
            try:
                entity = await self._table.get_entity(channel.value, key)
            except ResourceNotFoundError:
                parked = max_attempts <= 1
                fresh = {
                    "PartitionKey": channel.value,
                    "RowKey": key,
                    "reference": reference,
                    "attempts": 1,
                    "firstSeen": now,
                    "lastAttempt": now,
                    "parked": parked,
                    "reason": "RETRY_THRESHOLD_EXCEEDED" if parked else "NOT_MATCHED_YET",
                    "payload": payload[:30000],
                }
                try:
                    await self._table.create_entity(fresh)
                except ResourceExistsError:
                    continue
                return ReportAttempt(1, now, parked)
            attempts = int_of(entity["attempts"]) + 1
            first: datetime = entity["firstSeen"]
            was_parked = bool(entity.get("parked"))
            parked = was_parked or attempts >= max_attempts or now - first >= window
            entity["attempts"] = attempts
            entity["lastAttempt"] = now
            entity["parked"] = parked
            if parked and not was_parked:
                entity["reason"] = "RETRY_THRESHOLD_EXCEEDED"
            try:
                await self._table.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=etag_of(entity), match_condition=MatchConditions.IfNotModified
                )
            except HttpResponseError as error:
                if getattr(error, "status_code", None) == 412:
                    continue
                raise
            return ReportAttempt(attempts, first, parked)
        raise RuntimeError(f"could not count the attempt of report {reference}")

    async def park(self, channel: Channel, reference: str, payload: str, now: datetime, reason: str) -> None:
        await self._table.upsert_entity(
            {
                "PartitionKey": channel.value,
                "RowKey": escape_key(reference)[:512],
                "reference": reference,
                "attempts": 1,
                "firstSeen": now,
                "lastAttempt": now,
                "parked": True,
                "reason": reason,
                "payload": payload[:30000],
            },
            mode=UpdateMode.MERGE,
        )

    async def resolved(self, channel: Channel, reference: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            await self._table.delete_entity(channel.value, escape_key(reference)[:512])

    async def parked(self, channel: Channel | None = None) -> list[dict[str, object]]:
        query = "parked eq true" + (" and PartitionKey eq @pk" if channel else "")
        parameters = {"pk": channel.value} if channel else {}
        return [
            {
                "channel": entity["PartitionKey"],
                "reference": entity["reference"],
                "attempts": int_of(entity["attempts"]),
                "firstSeen": entity["firstSeen"],
                "reason": entity.get("reason"),
                "payload": entity.get("payload"),
            }
            async for entity in self._table.query_entities(query, parameters=parameters)
        ]
