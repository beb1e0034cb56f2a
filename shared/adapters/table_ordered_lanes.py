"""Ordered lanes on Azure Table Storage (``orderedlanes``): one partition per lane
(``<subscription id>|<subject hash>``), holding

- ``e<seq:016><index:06>``  an entry: one delivery waiting its turn, in log order,
- ``h``                     the head: the entry claimed (pushed, not yet settled), when it is due, the
                            position claimed last, and when the lane was last appended to and moved;

and one partition ``~floors`` with a row per resource: the row up to which its fan-out is accounted for,
and one partition ``~lanes`` listing the lanes the sweep reads (RowKey: the lane's partition), so it
never scans the table.

Every append touches the head in its transaction, and every claim and advance is one transaction
conditional on the head's ETag, so of two writers racing for a lane exactly one wins.

The listing cannot share a transaction with the lane, so it is kept crash-safe by its order: a lane is
listed before it is appended to (a crash after the append leaves it listed for the sweep), and a claim
needs no listing of its own (only a lane with entries is claimed, and the claimed entry stays until
released). A listing goes only when its lane has no head (dropped: empty and quiet) and it was written
longer ago than the sweep's ``forget_before``, deleted under the ETag it was read with: an append
lists again first, so it either changes that ETag or happened before the listing was read (and then
the listing is not old). A process lists a lane it appended to at most every ``_RELIST_AFTER``, well
within that age.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableServiceClient

from shared.adapters.table_transactions import submit_transaction
from shared.adapters.tables import TRANSACTION_OPERATIONS, escape_key, etag_of, get_or_none, int64, int_of
from shared.subscriptions.delivery import Delivery
from shared.subscriptions.ports import Lane, LaneHead

LANES_TABLE = "orderedlanes"
HEAD = "h"
FLOORS = "~floors"
LISTED = "~lanes"
# How often one process writes the listing of a lane it keeps appending to; must stay well below the
# age after which the sweep may forget a listing (``forget_before``: the ordering horizon, 10 minutes).
_RELIST_AFTER = timedelta(minutes=3)
_LISTED_REMEMBERED = 10_000
_CONCURRENCY = 16
_LOST_RACE = frozenset({"UpdateConditionNotSatisfied", "ConditionNotMet", "EntityAlreadyExists", "ResourceNotFound"})


def _partition(lane: Lane) -> str:
    return f"{escape_key(lane.subscription_id)}|{lane.subject}"


def _entry_key(seq: int, index: int) -> str:
    return f"e{seq:016d}{index:06d}"


def _ms(moment: datetime | None) -> int:
    return int(moment.timestamp() * 1000) if moment is not None else 0


def _of_ms(value: Any) -> datetime | None:
    ms = int_of(value) if value is not None else 0
    return datetime.fromtimestamp(ms / 1000, UTC) if ms else None


def _error_code(error: TableTransactionError) -> str:
    return str(getattr(error, "error_code", "") or "")


class TableLaneStore:
    def __init__(self, service: TableServiceClient, *, table: str = LANES_TABLE) -> None:
        self._table = service.get_table_client(table)
        self._listed: dict[str, datetime] = {}  # lane partition -> when this process last listed it

    async def _list(self, lane: Lane, partition: str, now: datetime) -> None:
        """Lists the lane for the sweep before it is appended to (see the module docstring)."""
        listed = self._listed.get(partition)
        if listed is not None and timedelta(0) <= now - listed < _RELIST_AFTER:
            return
        await self._table.upsert_entity(
            {"PartitionKey": LISTED, "RowKey": partition, "sid": lane.subscription_id, "written": int64(_ms(now))},
            mode=UpdateMode.REPLACE,
        )
        if len(self._listed) >= _LISTED_REMEMBERED:
            self._listed.clear()
        self._listed[partition] = now

    async def append(self, lane: Lane, deliveries: Sequence[Delivery], now: datetime) -> None:
        partition = _partition(lane)
        await self._list(lane, partition, now)
        first = deliveries[0]
        head = {
            "PartitionKey": partition,
            "RowKey": HEAD,
            "sid": first.subscription_id,
            "key": first.subscription_key,
            "resource": first.resource,
            "appended": now,
        }
        step = TRANSACTION_OPERATIONS - 1  # and the head
        for start in range(0, len(deliveries), step):
            operations: list[Any] = [
                (
                    "upsert",
                    {
                        "PartitionKey": partition,
                        "RowKey": _entry_key(d.seq, d.index),
                        "key": d.subscription_key,
                        "resource": d.resource,
                        "seq": int64(d.seq),
                        "index": d.index,
                    },
                    {"mode": UpdateMode.REPLACE},
                )
                for d in deliveries[start : start + step]
            ]
            operations.append(("upsert", head, {"mode": UpdateMode.MERGE}))
            await submit_transaction(self._table, operations)

    async def head(self, lane: Lane) -> LaneHead | None:
        entity = await get_or_none(self._table, _partition(lane), HEAD)
        if entity is None:
            return None
        etag = etag_of(entity)
        assert etag is not None  # every entity read from the service has one
        return _head(lane, entity, etag)

    async def first(self, lane: Lane, limit: int) -> list[Delivery]:
        query = "PartitionKey eq @pk and RowKey ge 'e' and RowKey lt 'f'"
        found: list[Delivery] = []
        async for entity in self._table.query_entities(
            query, parameters={"pk": _partition(lane)}, results_per_page=limit
        ):
            found.append(
                Delivery(
                    entity["key"],
                    lane.subscription_id,
                    entity["resource"],
                    int_of(entity["seq"]),
                    int(entity["index"]),
                    lane=lane.subject,
                )
            )
            if len(found) >= limit:
                break
        return found

    async def move(
        self,
        lane: Lane,
        etag: str | None,
        now: datetime,
        *,
        release: Delivery | None = None,
        claim: Delivery | None = None,
        due: datetime | None = None,
        blocked: bool = False,
        drop: bool = False,
    ) -> bool:
        partition = _partition(lane)
        operations: list[Any] = []
        if release is not None:
            operations.append(("delete", {"PartitionKey": partition, "RowKey": _entry_key(release.seq, release.index)}))
        condition = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
        if drop:
            assert etag is not None
            operations.append(("delete", {"PartitionKey": partition, "RowKey": HEAD}, condition))
        else:
            head: dict[str, Any] = {
                "PartitionKey": partition,
                "RowKey": HEAD,
                "moved": now,
                "blocked": blocked,
                "cs": int64(claim.seq if claim is not None else -1),
                "ci": claim.index if claim is not None else -1,
            }
            if claim is not None:
                head |= {
                    "sid": claim.subscription_id,
                    "key": claim.subscription_key,
                    "resource": claim.resource,
                    "due": due or now,
                    "attempt": claim.attempt,
                    "first": int64(_ms(claim.first_attempt_at)),
                    "ls": int64(claim.seq),
                    "li": claim.index,
                }
            if etag is None:
                operations.append(("create", head))
            else:
                operations.append(("update", head, {"mode": UpdateMode.MERGE, **condition}))
        try:
            await submit_transaction(self._table, operations)
        except TableTransactionError as error:
            code = _error_code(error)
            if release is not None and getattr(error, "index", None) == 0 and code == "ResourceNotFound":
                # The entry already went (a settle that raced this one): move the head all the same.
                return await self.move(lane, etag, now, claim=claim, due=due, blocked=blocked, drop=drop)
            if code in _LOST_RACE:
                return False
            raise
        return True

    async def touch(self, lane: Lane, etag: str, claimed: Delivery, due: datetime) -> bool:
        head = {
            "PartitionKey": _partition(lane),
            "RowKey": HEAD,
            "due": due,
            "attempt": claimed.attempt,
            "first": int64(_ms(claimed.first_attempt_at)),
        }
        try:
            await self._table.update_entity(
                head, mode=UpdateMode.MERGE, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        return True

    async def heads(self, forget_before: datetime) -> AsyncIterator[tuple[Lane, LaneHead]]:
        """The heads of the listed lanes: one partition query and a point read per listed lane. A listed
        lane without a head is forgotten once its listing is older than ``forget_before``."""
        listed = [
            entity async for entity in self._table.query_entities("PartitionKey eq @pk", parameters={"pk": LISTED})
        ]
        slots = asyncio.Semaphore(_CONCURRENCY)

        async def read(listing: Any) -> tuple[Lane, LaneHead] | None:
            partition: str = listing["RowKey"]
            lane = Lane(str(listing.get("sid") or ""), partition.rsplit("|", 1)[1])
            async with slots:
                entity = await get_or_none(self._table, partition, HEAD)
                if entity is None:
                    if int_of(listing.get("written") or 0) < _ms(forget_before):
                        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
                            await self._table.delete_entity(
                                LISTED,
                                partition,
                                etag=etag_of(listing),
                                match_condition=MatchConditions.IfNotModified,
                            )
                    return None
            etag = etag_of(entity)
            return (lane, _head(lane, entity, etag)) if lane.subscription_id and etag is not None else None

        for found in await asyncio.gather(*(read(listing) for listing in listed)):
            if found is not None:
                yield found

    async def floor(self, resource: str) -> int | None:
        entity = await get_or_none(self._table, FLOORS, escape_key(resource))
        return None if entity is None else int_of(entity["s"])

    async def save_floor(self, resource: str, seq: int) -> None:
        # Any floor ever found stays true, so a writer that lost a race to a higher one does no harm.
        await self._table.upsert_entity(
            {"PartitionKey": FLOORS, "RowKey": escape_key(resource), "s": int64(seq)}, mode=UpdateMode.REPLACE
        )


def _head(lane: Lane, entity: Any, etag: str) -> LaneHead:
    claimed_seq = int_of(entity.get("cs", -1))
    claimed = (
        Delivery(
            entity["key"],
            lane.subscription_id,
            entity["resource"],
            claimed_seq,
            int(entity.get("ci", 0)),
            int(entity.get("attempt") or 1),
            _of_ms(entity.get("first")),
            lane=lane.subject,
        )
        if claimed_seq >= 0
        else None
    )
    last_seq = int_of(entity.get("ls", -1))
    appended: datetime | None = entity.get("appended")
    moved: datetime | None = entity.get("moved")
    changed = max((t for t in (appended, moved) if t is not None), default=None)
    waiting = bool(entity.get("blocked")) or (appended is not None and (moved is None or appended >= moved))
    return LaneHead(
        etag=etag,
        claimed=claimed,
        due=entity.get("due"),
        last=(last_seq, int(entity.get("li", 0))) if last_seq >= 0 else None,
        waiting=claimed is None and waiting,
        changed=changed,
    )
