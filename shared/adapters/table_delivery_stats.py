"""Delivery statistics on Table Storage (see shared/subscriptions/stats.py).

``deliverystats<yyyymmdd>``: one table per day, dropped whole with the delivery log's retention.
PartitionKey = one of 16 shards, a hash of the subscription id; RowKey = ``<subscription>|<hour>|<process>``:
one process's running totals for one subscription and clock hour, replaced whole by that process
alone, so writers never contend. Shards let a flush write many subscriptions' rows in a few
transactions (at high fan-out a row per subscription per flush would cost a request per delivery);
a health read is one range query per day table.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableServiceClient

from shared.adapters.day_tables import DayTables
from shared.adapters.table_transactions import submit_transaction
from shared.adapters.tables import TRANSACTION_OPERATIONS, escape_key
from shared.subscriptions.ports import HourStats, LastOutcome, StatsSlot

STATS_TABLE_PREFIX = "deliverystats"
STATS_SHARDS = 16
_HOUR_KEY = "%Y%m%d%H"


def _shard(subscription_id: str) -> str:
    return f"{int(hashlib.sha256(subscription_id.encode()).hexdigest()[:4], 16) % STATS_SHARDS:02d}"


class TableDeliveryStats:
    def __init__(self, service: TableServiceClient, *, retention: timedelta = timedelta(days=14)) -> None:
        self._days = DayTables(service, STATS_TABLE_PREFIX, retention=retention)

    async def write(self, rows: Sequence[HourStats]) -> None:
        """One transaction per day table, shard and 100 rows."""
        groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            entity = _entity(row)
            groups[(self._days.name(row.hour), entity["PartitionKey"])].append(entity)

        async def submit(name: str, entities: list[dict[str, Any]]) -> None:
            table = await self._days.for_writing(name)
            for start in range(0, len(entities), TRANSACTION_OPERATIONS):
                chunk = entities[start : start + TRANSACTION_OPERATIONS]
                await submit_transaction(table, [("upsert", e, {"mode": UpdateMode.REPLACE}) for e in chunk])

        await asyncio.gather(*(submit(name, entities) for (name, _), entities in groups.items()))

    async def read(self, subscription_id: str, since: datetime, until: datetime) -> list[HourStats]:
        days: list[str] = []
        day = since.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        while day <= until:
            days.append(self._days.name(day))
            day += timedelta(days=1)
        prefix = f"{escape_key(subscription_id)}|"
        lowest = prefix + since.astimezone(UTC).strftime(_HOUR_KEY)

        async def rows_of(name: str) -> list[HourStats]:
            table = self._days.client(name)
            found: list[HourStats] = []
            with contextlib.suppress(ResourceNotFoundError):  # no day table: nothing was counted that day
                async for entity in table.query_entities(
                    "PartitionKey eq @pk and RowKey ge @lowest and RowKey lt @end",
                    parameters={"pk": _shard(subscription_id), "lowest": lowest, "end": prefix + "~"},
                ):
                    found.append(_row(subscription_id, entity))
            return found

        return [row for rows in await asyncio.gather(*(rows_of(name) for name in days)) for row in rows]

    async def expire(self, now: datetime) -> int:
        return await self._days.expire(now)


def _entity(row: HourStats) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": _shard(row.subscription_id),
        "RowKey": f"{escape_key(row.subscription_id)}|{row.hour.astimezone(UTC).strftime(_HOUR_KEY)}|{row.instance}",
        "hour": row.hour,
        # {slot: [delivered, failed, {bucket: attempts}]}
        "slots": json.dumps(
            {str(i): [s.delivered, s.failed, {str(b): n for b, n in s.latency.items()}] for i, s in row.slots.items()},
            separators=(",", ":"),
        ),
        # {first-attempt hour: [queued, taken]}
        "retries": json.dumps(
            {first.astimezone(UTC).strftime(_HOUR_KEY): counts for first, counts in row.retries.items()},
            separators=(",", ":"),
        ),
    }
    for prefix, last in (("success", row.last_success), ("failure", row.last_failure)):
        if last is not None:
            entity |= {
                f"{prefix}At": last.at,
                f"{prefix}Status": last.status_code,
                f"{prefix}LatencyMs": last.latency_ms,
                f"{prefix}Outcome": last.outcome,
                f"{prefix}Error": (last.error or "")[:1024] or None,
            }
    return entity


def _row(subscription_id: str, entity: Mapping[str, Any]) -> HourStats:
    _, hour_key, instance = entity["RowKey"].rsplit("|", 2)
    slots = {
        int(i): StatsSlot(int(d), int(f), {int(b): int(n) for b, n in latency.items()})
        for i, (d, f, latency) in json.loads(entity.get("slots") or "{}").items()
    }
    retries = {
        datetime.strptime(first, _HOUR_KEY).replace(tzinfo=UTC): [int(q), int(t)]
        for first, (q, t) in json.loads(entity.get("retries") or "{}").items()
    }
    return HourStats(
        subscription_id=subscription_id,
        hour=datetime.strptime(hour_key, _HOUR_KEY).replace(tzinfo=UTC),
        instance=instance,
        slots=slots,
        retries=retries,
        last_success=_last(entity, "success"),
        last_failure=_last(entity, "failure"),
    )


def _last(entity: Mapping[str, Any], prefix: str) -> LastOutcome | None:
    at = entity.get(f"{prefix}At")
    if at is None:
        return None
    return LastOutcome(
        at=at,
        status_code=entity.get(f"{prefix}Status"),
        latency_ms=int(entity.get(f"{prefix}LatencyMs") or 0),
        outcome=entity.get(f"{prefix}Outcome") or "",
        error=entity.get(f"{prefix}Error"),
    )
