"""The delivery log on Table Storage: every attempt, and the settled markers of outbound messages.

``deliveries<yyyymmdd>``: one table per day, dropped whole after the retention; PartitionKey = a
shard of the outbound message, so one settle is written in one transaction. The attempts one settle
records for one subscription are packed into one entity (a JSON list), not one entity per attempt:
building and sending an entity was a third of the outbound worker's CPU. An entity's RowKey is
``<subscription id>|<inverted ms of its newest attempt>|<hash>``, and its attempts span at most
``_SPAN_MS``, so a reader going newest first knows which attempts no later entity can precede.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
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
_SPAN_MS = 10_000  # the attempts of one entity lie within this many ms of each other
_PACKED_CHARS = 30_000  # a string property holds 32 K characters
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
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
        per_subscription: dict[tuple[str, str], list[Attempt]] = defaultdict(list)
        for attempt in attempts:
            per_subscription[(self._days.name(attempt.at), attempt.subscription_id)].append(attempt)
        for (table_name, subscription_id), theirs in per_subscription.items():
            groups[table_name].extend(_packed(shard, subscription_id, theirs))
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
        """Newest first across the day tables; ``before`` is ``<day>/<key of the last attempt seen>``."""
        day_names = sorted(await self._days.names(), reverse=True)
        start_day, start_key = before.split("/", 1) if before and "/" in before else ("99999999", "")
        prefix = f"{subscription_id}|"
        found: list[Attempt] = []
        for table_name in day_names:
            day = table_name[len(DELIVERY_TABLE_PREFIX) :]
            if day > start_day:
                continue
            after = start_key if day == start_day and start_key else ""
            # An entity holding an attempt older than the cursor's has its newest at most _SPAN_MS newer.
            lower = f"{prefix}{max(0, _inverted_of(after, prefix) - _SPAN_MS):013d}" if after else prefix
            table = self._days.client(table_name)
            query = "PartitionKey eq @pk and RowKey ge @lower and RowKey lt @upper"

            async def shard_rows(
                shard: str, table: Any = table, lower: str = lower, after: str = after, query: str = query
            ) -> list[Attempt]:
                parameters = {"pk": shard, "lower": lower, "upper": f"{prefix}~"}
                rows: list[tuple[str, Attempt]] = []
                newest = -1  # inverted ms of the newest attempt of the last entity read
                async for entity in table.query_entities(query, parameters=parameters, results_per_page=limit + 1):
                    newest = _inverted_of(entity["RowKey"], prefix)
                    for attempt in _unpacked(subscription_id, entity):
                        key = _attempt_key(attempt)
                        if key > after:
                            rows.append((key, attempt))
                    # Entities come newest attempt first: those newer than this entity's newest are final.
                    if sum(1 for key, _ in rows if _inverted_of(key, prefix) < newest) > limit:
                        break
                else:
                    newest = _EPOCH_LIMIT + 1  # all read: every attempt is final
                return [a for key, a in sorted(rows, key=lambda r: r[0]) if _inverted_of(key, prefix) < newest][
                    : limit + 1
                ]

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


def _inverted_of(key: str, prefix: str) -> int:
    """The inverted ms in an attempt's or an entity's RowKey (``<subscription id>|<inverted ms>|…``)."""
    return int(key[len(prefix) : len(prefix) + 13])


def _packed(shard: str, subscription_id: str, attempts: Sequence[Attempt]) -> list[dict[str, Any]]:
    """One subscription's attempts of one settle as few entities as fit: within _SPAN_MS of each other
    and _PACKED_CHARS of JSON each. Upserted again with the same attempts, an entity keeps its key."""
    ordered = sorted(attempts, key=_attempt_key)
    entities: list[dict[str, Any]] = []
    chunk: list[Attempt] = []
    encoded: list[str] = []
    size = 0

    def flush() -> None:
        keys = "\n".join(_attempt_key(a) for a in chunk)
        newest = _EPOCH_LIMIT - _ms(chunk[0].at)
        entities.append(
            {
                "PartitionKey": shard,
                "RowKey": f"{subscription_id}|{newest:013d}|{hashlib.sha256(keys.encode()).hexdigest()[:16]}",
                "a": "[" + ",".join(encoded) + "]",
                "n": len(chunk),
            }
        )

    for attempt in ordered:
        item = json.dumps(
            [
                attempt.delivery_id,
                attempt.attempt,
                _micros(attempt.at),
                attempt.status_code,
                attempt.latency_ms,
                attempt.outcome,
                (attempt.error or "")[:1024] or None,
                (attempt.response_excerpt or "")[:1024] or None,
                attempt.event_id,
            ],
            separators=(",", ":"),
        )
        if chunk and (size + len(item) + 2 > _PACKED_CHARS or _ms(chunk[0].at) - _ms(attempt.at) > _SPAN_MS):
            flush()
            chunk, encoded, size = [], [], 0
        chunk.append(attempt)
        encoded.append(item)
        size += len(item) + 1
    if chunk:
        flush()
    return entities


def _unpacked(subscription_id: str, entity: Mapping[str, Any]) -> list[Attempt]:
    return [
        Attempt(
            subscription_id=subscription_id,
            delivery_id=delivery,
            event_id=event_id or "",
            attempt=int(number),
            at=_EPOCH + timedelta(microseconds=at),
            status_code=status,
            latency_ms=int(latency or 0),
            outcome=outcome or "",
            error=error,
            response_excerpt=response,
        )
        for delivery, number, at, status, latency, outcome, error, response, event_id in json.loads(entity["a"])
    ]


def _micros(moment: datetime) -> int:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return (aware - _EPOCH) // timedelta(microseconds=1)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
