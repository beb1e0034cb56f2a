"""The delivery log on Table Storage: every attempt, and the settled markers of outbound messages.

``deliveries<yyyymmdd>``: one table per day, dropped whole after the retention; PartitionKey = a
shard of the subscription id, so one message's attempts are written in a few transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceNotFoundError, ServiceRequestError, ServiceResponseError
from azure.data.tables.aio import TableServiceClient

from shared.adapters.day_tables import DayTables
from shared.adapters.table_transactions import submit_transaction
from shared.adapters.tables import TRANSACTION_OPERATIONS, escape_key
from shared.subscriptions.ports import Attempt, Settled

DELIVERY_TABLE_PREFIX = "deliveries"
DELIVERY_SHARDS = 16
_OUTAGE_PATIENCE_SECONDS = 30.0  # how long the delivery log waits for storage it cannot reach


def _shard(subscription_id: str) -> str:
    return f"{int(hashlib.sha256(subscription_id.encode()).hexdigest()[:4], 16) % DELIVERY_SHARDS:02d}"


_EPOCH_LIMIT = 10**13
# Marker rows of settled deliveries sort after every attempt's RowKey (``<subscription id>|…``).
_SETTLED_PREFIX = "~settled|"


class TableDeliveryLog:
    """Attempts by day table, newest first within a subscription; tables older than the retention are dropped."""

    def __init__(self, service: TableServiceClient, *, retention: timedelta = timedelta(days=14)) -> None:
        self._days = DayTables(service, DELIVERY_TABLE_PREFIX, retention=retention)

    async def record(self, attempts: Sequence[Attempt], settled: Settled | None = None) -> None:
        """One message's attempts go to one shard (a deterministic one), so they take a transaction
        per 100 attempts; reads, which are rare, look in every shard. What the message has settled
        is a marker row in the same shard, in the transaction of the last attempts: once it is
        there, so are they."""
        if not attempts and settled is None:
            return
        shard = _shard(settled.message_id if settled else attempts[0].delivery_id + str(attempts[0].attempt))
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for attempt in attempts:
            groups[self._days.name(attempt.at)].append(
                {
                    "PartitionKey": shard,
                    "RowKey": _attempt_key(attempt),
                    "at": attempt.at,
                    "eventId": attempt.event_id,
                    "attempt": attempt.attempt,
                    "statusCode": attempt.status_code,
                    "latencyMs": attempt.latency_ms,
                    "outcome": attempt.outcome,
                    "error": (attempt.error or "")[:1024] or None,
                    "response": (attempt.response_excerpt or "")[:1024] or None,
                }
            )
        marked: str | None = None
        if settled is not None:
            marked = self._days.name(settled.at)
            ids = ",".join(settled.delivery_ids)
            chunk = hashlib.sha256(ids.encode()).hexdigest()[:16]
            groups[marked].append(
                {"PartitionKey": shard, "RowKey": f"{_settled_key(settled.message_id)}{chunk}", "m": ids}
            )

        async def write(table_name: str, entities: list[dict[str, Any]]) -> None:
            # The attempts record pushes already made: lost, the message comes back and pushes them
            # again. So storage out of reach (a restart, a failover) is waited out for a while; the
            # upserts are idempotent, so a transaction cut off mid-answer is simply written again.
            deadline = time.monotonic() + _OUTAGE_PATIENCE_SECONDS
            pause = 0.2
            while True:
                try:
                    table = await self._days.for_writing(table_name)
                    for start in range(0, len(entities), TRANSACTION_OPERATIONS):
                        chunk = entities[start : start + TRANSACTION_OPERATIONS]
                        await submit_transaction(table, [("upsert", e) for e in chunk])
                    return
                except (ServiceRequestError, ServiceResponseError):
                    if time.monotonic() + pause > deadline:
                        raise
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 1.0)

        # The marker's table last: a marker never stands for attempts that were not written.
        await asyncio.gather(*(write(table, entities) for table, entities in groups.items() if table != marked))
        if marked is not None:
            await write(marked, groups[marked])

    async def settled(self, message_id: str, now: datetime) -> set[str]:
        """A message redelivered after midnight may have been settled the day before: both days are read."""
        query = "PartitionKey eq @pk and RowKey ge @start and RowKey lt @end"
        prefix = _settled_key(message_id)
        parameters = {"pk": _shard(message_id), "start": prefix, "end": prefix + "~"}
        found: set[str] = set()
        for day in sorted({self._days.name(now - timedelta(days=1)), self._days.name(now)}):
            table = self._days.client(day)
            with contextlib.suppress(ResourceNotFoundError):  # no day table yet: nothing recorded that day
                async for entity in table.query_entities(query, parameters=parameters, select=["m"]):
                    found.update(filter(None, (entity.get("m") or "").split(",")))
        return found

    async def attempts(self, subscription_id: str, limit: int, before: str | None) -> tuple[list[Attempt], str | None]:
        """Newest first across the day tables; ``before`` is ``<day>/<last RowKey seen>``."""
        day_names = sorted(await self._days.names(), reverse=True)
        start_day, start_key = before.split("/", 1) if before and "/" in before else ("99999999", "")
        found: list[Attempt] = []
        for table_name in day_names:
            day = table_name[len(DELIVERY_TABLE_PREFIX) :]
            if day > start_day:
                continue
            lower = start_key if day == start_day and start_key else f"{subscription_id}|"
            table = self._days.client(table_name)
            query = "PartitionKey eq @pk and RowKey gt @lower and RowKey lt @upper"

            async def shard_rows(
                shard: str, table: Any = table, lower: str = lower, query: str = query
            ) -> list[Attempt]:
                parameters = {"pk": shard, "lower": lower, "upper": f"{subscription_id}|~"}
                rows: list[Attempt] = []
                async for entity in table.query_entities(query, parameters=parameters, results_per_page=limit + 1):
                    rows.append(_attempt(subscription_id, entity))
                    if len(rows) > limit:
                        break
                return rows

            shards = await asyncio.gather(*(shard_rows(f"{n:02d}") for n in range(DELIVERY_SHARDS)))
            found.extend(sorted((a for rows in shards for a in rows), key=_attempt_key)[: limit + 1 - len(found)])
            if len(found) > limit:
                last = found[limit - 1]
                return found[:limit], f"{last.at.strftime('%Y%m%d')}/{_attempt_key(last)}"
        return found, None

    async def expire(self, now: datetime) -> int:
        return await self._days.expire(now)


def _attempt_key(attempt: Attempt) -> str:
    inverted = _EPOCH_LIMIT - int(attempt.at.timestamp() * 1000)
    return f"{attempt.subscription_id}|{inverted:013d}|{attempt.delivery_id}|{attempt.attempt:03d}"


def _settled_key(message_id: str) -> str:
    return f"{_SETTLED_PREFIX}{escape_key(message_id)}|"


def _attempt(subscription_id: str, entity: Mapping[str, Any]) -> Attempt:
    return Attempt(
        subscription_id=subscription_id,
        delivery_id=entity["RowKey"].split("|")[2],
        event_id=entity.get("eventId") or "",
        attempt=int(entity.get("attempt") or 0),
        at=entity["at"],
        status_code=entity.get("statusCode"),
        latency_ms=int(entity.get("latencyMs") or 0),
        outcome=entity.get("outcome") or "",
        error=entity.get("error"),
        response_excerpt=entity.get("response"),
    )
