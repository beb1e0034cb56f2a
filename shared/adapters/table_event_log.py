"""The event log on Azure Table Storage.

One partition per resource holds, in key order:

- ``e<seq>``   log rows: the events of one append, packed in binary properties,
- ``k<hash>``  one idempotency key per event: (source, id) -> content hash, time and row sequence,
- ``f<seq><chunk>`` fan-out marks of the inbound message starting at ``seq`` (written by
  shared/adapters/table_fanout_marks.py; retention removes them with the rows),
- ``o<seq>``   outbox entries: rows committed but not yet handed to the inbound queue,
- ``~seq``     the resource's sequence counter.

An append is ONE entity-group transaction: the counter moves from N to N+r under If-Match, and the
r log rows, their keys and an outbox entry are inserted. So rows become visible exactly in sequence
order (no late commit can land behind a reader), a duplicate (source, id) fails the transaction
at its key (idempotency without a read), and every committed row is either dispatched or still in
the outbox for the sweeper. Packing events into rows keeps the cost near one entity per event,
which is what Azurite and Azure's 2,000 entities/s per partition limit.

Concurrent appends in one process are grouped into shared transactions (group commit); appends
from other processes are serialized by the counter's ETag.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient

from shared.adapters.table_transactions import submit_transaction
from shared.adapters.tables import TRANSACTION_OPERATIONS, escape_key, get_or_none, int64, int_of, pack, unpack
from shared.events.log import AppendOutcome, AppendResult, CommitListener, LogRow, PendingDispatch
from shared.events.model import ValidatedEvent, is_republish, stored_identity

log = logging.getLogger(__name__)

EVENTS_TABLE = "events"
RESOURCES_TABLE = "eventresources"

COUNTER_KEY = "~seq"
MAX_ROW_BYTES = 512 * 1024  # well under the 1 MiB entity limit
MAX_COMMIT_BYTES = 2 * 1024 * 1024  # well under the 4 MiB transaction limit (binary travels as base64)
CHUNK_BYTES = 64 * 1024  # a binary property holds at most 64 KiB
DIRECTORY_REFRESH = timedelta(seconds=30)
_MAX_CONFLICT_RETRIES = 50
_FIRST_SCAN_ROWS = 2
_MAX_SCAN_ROWS = 100


def row_key(seq: int) -> str:
    return f"e{seq:016d}"


def outbox_key(seq: int) -> str:
    return f"o{seq:016d}"


def key_row_key(key_hash: str) -> str:
    return f"k{key_hash}"


def fanout_mark_key(seq: int, chunk: str = "") -> str:
    return f"f{seq:016d}{chunk}"


def _pack(events: Sequence[bytes]) -> dict[str, bytes]:
    """A row's events, one a line, in the ``d00``, ``d01`` ... properties."""
    return pack(b"\n".join(events), "d", chunk=CHUNK_BYTES)


def _unpack(entity: dict[str, Any]) -> list[bytes]:
    payload = unpack(entity, "d")
    return payload.split(b"\n") if payload else []


def _to_row(entity: dict[str, Any]) -> LogRow:
    return LogRow(seq=int(entity["RowKey"][1:]), stored_at=entity["t"], events=_unpack(entity))


@dataclass
class _Pending:
    event: ValidatedEvent
    future: asyncio.Future[AppendResult]


@dataclass
class _Partition:
    resource: str
    pending: deque[_Pending] = field(default_factory=deque)
    draining: bool = False


class _KeyTaken(Exception):
    def __init__(self, key_hash: str) -> None:
        self.key_hash = key_hash


class TableEventLog:
    def __init__(self, service: TableServiceClient, *, listener: CommitListener | None = None) -> None:
        """``listener`` is handed the rows of every commit; without one (a log only read from, or
        benchmarked) committed rows wait in the outbox for the sweeper."""
        self._service = service
        self._events: TableClient = service.get_table_client(EVENTS_TABLE)
        self._resources: TableClient = service.get_table_client(RESOURCES_TABLE)
        self._listener = listener
        self._partitions: dict[str, _Partition] = {}
        # Last known (sequence, etag) per resource; a stale entry only costs one retried transaction.
        self._counters: OrderedDict[str, tuple[int, str | None]] = OrderedDict()
        self._directory_touched: OrderedDict[str, datetime] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    async def flush(self, timeout: float = 10.0) -> None:
        """Waits for the commits in flight to finish and hand their rows on (before storage closes),
        including commits of appends made meanwhile."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._tasks:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                log.warning("commits still in flight at flush; the outbox sweeper hands their rows on")
                return
            await asyncio.wait(set(self._tasks), timeout=left)

    # ----------------------------------------------------------------------------------- append

    async def append(self, resource: str, events: Sequence[ValidatedEvent]) -> list[AppendResult]:
        loop = asyncio.get_running_loop()
        partition = self._partitions.get(resource)
        if partition is None:
            partition = self._partitions[resource] = _Partition(resource)
        futures: list[asyncio.Future[AppendResult]] = []
        for event in events:
            future: asyncio.Future[AppendResult] = loop.create_future()
            partition.pending.append(_Pending(event, future))
            futures.append(future)
        if not partition.draining:
            self._start_drain(partition)
        return list(await asyncio.gather(*futures))

    async def _drain(self, partition: _Partition) -> None:
        try:
            await self._touch_directory(partition.resource)
            while partition.pending:
                batch = self._take_batch(partition)
                try:
                    await self._commit(partition.resource, batch)
                except Exception as error:  # the append fails for these callers; nothing half-written stays visible
                    for item in batch:
                        if not item.future.done():
                            item.future.set_exception(error)
        except Exception as error:
            while partition.pending:
                item = partition.pending.popleft()
                if not item.future.done():
                    item.future.set_exception(error)
        finally:
            partition.draining = False
            if not partition.pending:
                self._partitions.pop(partition.resource, None)
            else:  # appended after the loop ended
                self._start_drain(partition)

    def _start_drain(self, partition: _Partition) -> None:
        partition.draining = True
        task = asyncio.create_task(self._drain(partition))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    def _take_batch(partition: _Partition) -> list[_Pending]:
        """As many pending events as one transaction holds: keys + rows + counter + outbox <= 100."""
        batch: list[_Pending] = []
        total = 0
        rows = 1
        row_size = 0
        while partition.pending:
            size = len(partition.pending[0].event.body) + 1
            new_row = bool(batch) and row_size + size > MAX_ROW_BYTES
            next_rows = rows + 1 if new_row else rows
            if batch and (total + size > MAX_COMMIT_BYTES or len(batch) + 1 + next_rows + 2 > TRANSACTION_OPERATIONS):
                break
            batch.append(partition.pending.popleft())
            rows = next_rows
            row_size = size if new_row else row_size + size
            total += size
        return batch

    async def _commit(self, resource: str, batch: list[_Pending]) -> None:
        # Two events with one (source, id) in the same commit: the first one decides for both.
        first_by_key: dict[str, _Pending] = {}
        followers: list[tuple[_Pending, _Pending]] = []
        unique: list[_Pending] = []
        for item in batch:
            leader = first_by_key.get(item.event.key_hash)
            if leader is None:
                first_by_key[item.event.key_hash] = item
                unique.append(item)
            else:
                followers.append((item, leader))

        remaining = unique
        checked_keys = False
        # (content hash, time) of the stored event per key: what a follower is compared with.
        stored: dict[str, tuple[str, str]] = {}
        for attempt in range(_MAX_CONFLICT_RETRIES):
            if not remaining:
                break
            try:
                seqs, outbox_id = await self._try_commit(resource, remaining)
            except _KeyTaken as taken:
                # A key exists already: resolve every event of the batch against stored keys at once,
                # so replaying a large batch costs one round of reads, not one failed commit per event.
                only = None if not checked_keys else {taken.key_hash}
                remaining = await self._resolve_existing(resource, remaining, stored, only=only)
                checked_keys = True
                continue
            except _CounterMoved:
                await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))
                continue
            # The events are durable: their publishers are answered now, and the rows are handed on
            # before this partition's next commit; what a crash here leaves behind, the outbox holds.
            row_of = self._row_assignment(remaining, seqs)
            for item, seq in zip(remaining, row_of, strict=True):
                stored[item.event.key_hash] = (item.event.content_hash, item.event.stored_time)
                item.future.set_result(AppendResult(AppendOutcome.STORED, seq))
            if self._listener is not None:
                try:
                    await self._listener.dispatch(resource, seqs)
                    await self.clear_dispatch(resource, outbox_id)
                except Exception:  # durable already; the outbox sweeper dispatches it later
                    log.exception(
                        "dispatch after commit failed; left to the outbox sweeper", extra={"resource": resource}
                    )
            break
        else:
            raise RuntimeError(f"could not append to {resource}: the sequence kept moving")

        for item, leader in followers:
            result = await asyncio.shield(leader.future)
            kept = stored.get(item.event.key_hash)
            if kept is not None and is_republish(item.event, *kept):
                item.future.set_result(AppendResult(AppendOutcome.DUPLICATE, result.seq))
            else:
                item.future.set_result(AppendResult(AppendOutcome.CONFLICT, result.seq))

    @staticmethod
    def _rows_for(items: Sequence[_Pending]) -> list[list[_Pending]]:
        rows: list[list[_Pending]] = [[]]
        size = 0
        for item in items:
            grown = size + len(item.event.body) + 1
            if rows[-1] and grown > MAX_ROW_BYTES:
                rows.append([])
                grown = len(item.event.body) + 1
            rows[-1].append(item)
            size = grown
        return rows

    def _row_assignment(self, items: Sequence[_Pending], seqs: Sequence[int]) -> list[int]:
        assigned: list[int] = []
        for row, seq in zip(self._rows_for(items), seqs, strict=True):
            assigned.extend(seq for _ in row)
        return assigned

    async def _try_commit(self, resource: str, items: Sequence[_Pending]) -> tuple[list[int], str]:
        partition_key = escape_key(resource)
        last, etag = await self._counter(resource)
        rows = self._rows_for(items)
        seqs = [last + 1 + offset for offset in range(len(rows))]
        now = datetime.now(UTC)
        counter = {"PartitionKey": partition_key, "RowKey": COUNTER_KEY, "s": int64(seqs[-1])}
        operations: list[Any] = []
        if etag is None:
            operations.append(("create", counter))
        else:
            operations.append(
                (
                    "update",
                    counter,
                    {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified},
                )
            )
        for row, seq in zip(rows, seqs, strict=True):
            for item in row:
                operations.append(
                    (
                        "create",
                        {
                            "PartitionKey": partition_key,
                            "RowKey": key_row_key(item.event.key_hash),
                            "h": item.event.content_hash,
                            "tm": item.event.stored_time,
                            "s": int64(seq),
                        },
                    )
                )
        for row, seq in zip(rows, seqs, strict=True):
            operations.append(
                (
                    "create",
                    {
                        "PartitionKey": partition_key,
                        "RowKey": row_key(seq),
                        "t": now,
                        "n": len(row),
                        "ks": "".join(item.event.key_hash for item in row),
                        **_pack([item.event.body for item in row]),
                    },
                )
            )
        outbox_id = outbox_key(seqs[0])
        operations.append(
            (
                "create",
                {
                    "PartitionKey": partition_key,
                    "RowKey": outbox_id,
                    "first": int64(seqs[0]),
                    "last": int64(seqs[-1]),
                    "t": now,
                },
            )
        )
        try:
            results = await submit_transaction(self._events, operations)
        except TableTransactionError as error:
            index = getattr(error, "index", None)
            code = str(getattr(error, "error_code", "") or "")
            if index == 0 or code in ("UpdateConditionNotSatisfied", "ConditionNotMet"):
                self._counters.pop(resource, None)
                raise _CounterMoved from error
            if code == "EntityAlreadyExists" and index is not None and 0 < index <= len(items):
                taken = operations[index][1]["RowKey"][1:]
                raise _KeyTaken(taken) from error
            if code == "EntityAlreadyExists":
                # A log row or outbox entry exists at our sequence: our counter view is stale.
                self._counters.pop(resource, None)
                raise _CounterMoved from error
            raise
        self._remember_counter(resource, seqs[-1], results[0].get("etag"))
        return seqs, outbox_id

    async def _resolve_existing(
        self,
        resource: str,
        items: list[_Pending],
        stored: dict[str, tuple[str, str]],
        *,
        only: set[str] | None = None,
    ) -> list[_Pending]:
        """Answer the items whose key is stored (duplicate or conflict), note what is stored, return the rest."""
        partition_key = escape_key(resource)
        candidates = [item for item in items if only is None or item.event.key_hash in only]

        async def lookup(item: _Pending) -> tuple[_Pending, dict[str, Any] | None]:
            entity = await get_or_none(
                self._events, partition_key, key_row_key(item.event.key_hash), select=["h", "tm", "s"]
            )
            return item, None if entity is None else dict(entity)

        found = [(item, entity) for item, entity in await asyncio.gather(*map(lookup, candidates)) if entity]
        keys = {item.event.key_hash: entity for item, entity in found}
        stored.update({key: (entity["h"], entity["tm"]) for key, entity in keys.items() if entity.get("tm")})
        legacy = {key: int_of(entity["s"]) for key, entity in keys.items() if key not in stored}
        if legacy:
            stored.update(await self._legacy_identities(partition_key, legacy))
        for item, entity in found:
            kept = stored.get(item.event.key_hash)
            duplicate = kept is not None and is_republish(item.event, *kept)
            outcome = AppendOutcome.DUPLICATE if duplicate else AppendOutcome.CONFLICT
            item.future.set_result(AppendResult(outcome, int_of(entity["s"])))
        resolved = {id(item) for item, _ in found}
        return [item for item in items if id(item) not in resolved]

    async def _legacy_identities(self, partition_key: str, seq_of: dict[str, int]) -> dict[str, tuple[str, str]]:
        """Keys written before they carried the stored time: content hash and time from the events' log rows.

        The ``h`` of such a key hashed ``time`` too when the publisher gave it, so it cannot be compared;
        these keys go with their rows at retention. A key whose row retention removed meanwhile stays
        unresolved, and the event is answered as a conflict: never stored twice.
        """

        async def row(seq: int) -> dict[str, Any] | None:
            entity = await get_or_none(self._events, partition_key, row_key(seq))
            return None if entity is None else dict(entity)

        identities: dict[str, tuple[str, str]] = {}
        for entity in await asyncio.gather(*map(row, sorted(set(seq_of.values())))):
            row_keys: str = (entity or {}).get("ks") or ""
            for index, body in enumerate(_unpack(entity) if entity else []):
                key = row_keys[index * 32 : (index + 1) * 32]
                if key in seq_of:
                    identities[key] = stored_identity(body)
        return identities

    async def _counter(self, resource: str) -> tuple[int, str | None]:
        cached = self._counters.get(resource)
        if cached is not None:
            self._counters.move_to_end(resource)
            return cached
        entity = await get_or_none(self._events, escape_key(resource), COUNTER_KEY)
        if entity is None:
            return 0, None
        value = (int_of(entity["s"]), entity.metadata["etag"])
        self._remember_counter(resource, value[0], value[1])
        return value

    def _remember_counter(self, resource: str, seq: int, etag: str | None) -> None:
        self._counters[resource] = (seq, etag)
        self._counters.move_to_end(resource)
        while len(self._counters) > 4096:
            self._counters.popitem(last=False)

    async def _touch_directory(self, resource: str) -> None:
        """Keep the resource in the directory the sweeper and retention walk; cheap: once per 30 s."""
        now = datetime.now(UTC)
        touched = self._directory_touched.get(resource)
        if touched is not None and now - touched < DIRECTORY_REFRESH:
            return
        await self._resources.upsert_entity(
            {"PartitionKey": "r", "RowKey": escape_key(resource), "resource": resource, "last": now},
            mode=UpdateMode.MERGE,
        )
        self._directory_touched[resource] = now
        self._directory_touched.move_to_end(resource)
        while len(self._directory_touched) > 4096:
            self._directory_touched.popitem(last=False)

    # ------------------------------------------------------------------------------------- read

    async def rows_from(self, resource: str, seq: int, limit: int) -> list[LogRow]:
        query = "PartitionKey eq @pk and RowKey ge @start and RowKey lt @end"
        parameters = {"pk": escape_key(resource), "start": row_key(max(seq, 0)), "end": "f"}
        rows: list[LogRow] = []
        async for entity in self._events.query_entities(
            query, parameters=parameters, results_per_page=min(limit, 1000)
        ):
            rows.append(_to_row(entity))
            if len(rows) >= limit:
                break
        return rows

    async def scan(self, resource: str, seq: int, want_events: int) -> AsyncIterator[LogRow]:
        # Rows are keyed by their contiguous sequence, so each request simply starts after the last row
        # read. The first asks for two rows (a cursor inside a packed row plus the next one usually fill
        # a page); later ones as many as the density seen says the caller still wants: a page of 100
        # events reads ~2 packed rows, not a fixed dozen, and a sparse log needs few round trips.
        next_seq, page, rows, events = max(seq, 0), _FIRST_SCAN_ROWS, 0, 0
        while True:
            found = await self.rows_from(resource, next_seq, page)
            for row in found:
                rows += 1
                events += len(row.events)
                yield row
            if len(found) < page:
                return
            next_seq = found[-1].seq + 1
            wanted = want_events - events
            page = math.ceil(wanted * rows / events) + 1 if wanted > 0 and events else page * 2
            page = min(max(page, 1), _MAX_SCAN_ROWS)

    async def rows_by_seq(self, resource: str, seqs: Sequence[int]) -> list[LogRow]:
        partition_key = escape_key(resource)

        async def one(seq: int) -> LogRow | None:
            entity = await get_or_none(self._events, partition_key, row_key(seq))
            return None if entity is None else _to_row(entity)

        rows = await asyncio.gather(*(one(seq) for seq in seqs))
        return [row for row in rows if row is not None]

    async def last_seq(self, resource: str) -> int:
        entity = await get_or_none(self._events, escape_key(resource), COUNTER_KEY)
        return 0 if entity is None else int_of(entity["s"])

    async def first_seq(self, resource: str) -> int | None:
        query = "PartitionKey eq @pk and RowKey ge @start and RowKey lt @end"
        parameters = {"pk": escape_key(resource), "start": "e", "end": "f"}
        async for entity in self._events.query_entities(
            query, parameters=parameters, results_per_page=1, select=["RowKey"]
        ):
            return int(entity["RowKey"][1:])
        return None

    # --------------------------------------------------------------------------------- outbox

    async def pending_dispatches(self, resource: str, committed_before: datetime) -> list[PendingDispatch]:
        query = "PartitionKey eq @pk and RowKey ge @start and RowKey lt @end"
        parameters = {"pk": escape_key(resource), "start": "o", "end": "p"}
        pending: list[PendingDispatch] = []
        async for entity in self._events.query_entities(query, parameters=parameters):
            if entity["t"] >= committed_before:
                continue
            first, last = int_of(entity["first"]), int_of(entity["last"])
            pending.append(PendingDispatch(resource, list(range(first, last + 1)), entity["RowKey"], entity["t"]))
        return pending

    async def clear_dispatch(self, resource: str, outbox_id: str) -> None:
        await self._events.delete_entity(escape_key(resource), outbox_id)

    async def resources_active_since(self, since: datetime) -> list[str]:
        query = "PartitionKey eq 'r' and last ge @since"
        return [
            entity["resource"]
            async for entity in self._resources.query_entities(query, parameters={"since": since}, select=["resource"])
        ]

    async def all_resources(self) -> list[str]:
        return [
            entity["resource"]
            async for entity in self._resources.query_entities("PartitionKey eq 'r'", select=["resource"])
        ]

    # ------------------------------------------------------------------------------ retention

    async def expire(self, resource: str, stored_before: datetime) -> int:
        """Delete the expired prefix: each row with its idempotency keys, 100 operations per transaction."""
        partition_key = escape_key(resource)
        query = "PartitionKey eq @pk and RowKey ge @start and RowKey lt @end"
        parameters = {"pk": partition_key, "start": "e", "end": "f"}
        removed = 0
        operations: list[Any] = []
        async for entity in self._events.query_entities(
            query, parameters=parameters, select=["RowKey", "t", "n", "ks"]
        ):
            if entity["t"] >= stored_before:
                break
            keys = entity.get("ks") or ""
            row_operations: list[Any] = [
                ("delete", {"PartitionKey": partition_key, "RowKey": key_row_key(keys[i : i + 32])})
                for i in range(0, len(keys), 32)
            ]
            row_operations.append(("delete", {"PartitionKey": partition_key, "RowKey": entity["RowKey"]}))
            if len(operations) + len(row_operations) > TRANSACTION_OPERATIONS:
                await submit_transaction(self._events, operations)
                operations = []
            operations.extend(row_operations)
            removed += int(entity.get("n") or 0)
        if operations:
            await submit_transaction(self._events, operations)
        if removed:
            await self._expire_marks(partition_key, stored_before)
        return removed

    async def _expire_marks(self, partition_key: str, stored_before: datetime) -> None:
        first = None
        async for entity in self._events.query_entities(
            "PartitionKey eq @pk and RowKey ge 'e' and RowKey lt 'f'",
            parameters={"pk": partition_key},
            results_per_page=1,
            select=["RowKey"],
        ):
            first = int(entity["RowKey"][1:])
            break
        upper = fanout_mark_key(first) if first is not None else "g"
        query = "PartitionKey eq @pk and RowKey ge 'f' and RowKey lt @upper"
        keys = [
            e["RowKey"]
            async for e in self._events.query_entities(
                query, parameters={"pk": partition_key, "upper": upper}, select=["RowKey"]
            )
        ]
        for start in range(0, len(keys), TRANSACTION_OPERATIONS):
            await submit_transaction(
                self._events,
                [
                    ("delete", {"PartitionKey": partition_key, "RowKey": k})
                    for k in keys[start : start + TRANSACTION_OPERATIONS]
                ],
            )


class _CounterMoved(Exception):
    """Another writer advanced the resource's sequence first; re-read and try again."""
