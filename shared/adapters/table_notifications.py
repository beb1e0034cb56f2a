"""Notifications, their gateway references and their status-event outbox on Azure Table Storage.

Table ``notifications`` (docs/notifications.md has the full picture). The outbox lives in the
notifications' table because an outbox entry is written in the same entity-group transaction as the
change that owes its events (one partition: the order's):

- PK ``<orderId>``  RK ``<notificationId>``: one notification (per recipient address and channel), with
  its status history (``hist``, JSON: the last 20 transitions) written in the same update as each move
- PK ``~ref|<channel>|<reference>`` RK ``r``: gateway reference -> notification, for reports
- PK ``<orderId>``  RK ``~o<time><random>``: an outbox entry, the status events a change owes,
  written in the change's transaction and deleted once they are published
- PK ``~owed``      RK ``<minute>|<orderId>``: orders that may hold outbox entries, for the sweep
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableServiceClient

from shared.adapters.table_transactions import submit_transaction
from shared.adapters.tables import (
    POINT_READ_CONCURRENCY,
    TRANSACTION_OPERATIONS,
    escape_key,
    etag_of,
    int_of,
    pack,
    query_keys,
    time_key,
    unpack,
)
from shared.notifications.model import Channel, Notification, RecipientSpec, Status, Transition
from shared.notifications.ports import Announce, Changed, Decide, OwedEvents

log = logging.getLogger(__name__)

NOTIFICATIONS_TABLE = "notifications"
OWED_PARTITION = "~owed"
OWED_PREFIX = "~o"  # sorts after every notification id (a uuid) in the order's partition
OWED_BUCKET = timedelta(minutes=1)
# A marker is dropped only once its minute is this far behind the sweep's cutoff and its order holds no
# entry: a change whose transaction lands later than that after its marker would go unswept.
_OWED_MARKER_SLACK = timedelta(minutes=1)
_MAX_CHANGE_ROUNDS = 8


def _notification_entity(n: Notification) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": n.order_id,
        "RowKey": n.id,
        "ch": n.channel.value,
        "st": n.status.value,
        "stt": n.status_time,
        "rcp": json.dumps(n.recipient.to_json(), separators=(",", ":")),
        "att": n.attempt,
        "fails": n.failures,
    }
    optional = {
        "addr": n.address,
        "name": n.name,
        "orgno": n.organization_number,
        "desc": (n.description or "")[:1000] or None,
        "ref": n.reference,
        "exp": n.expiry,
        "hist": _history_json(n.history) if n.history else None,
    }
    entity.update({key: value for key, value in optional.items() if value is not None})
    return entity


def _history_json(history: Sequence[Transition]) -> str:
    steps = [
        [t.status.value, t.at.astimezone(UTC).isoformat(), *([t.description] if t.description else [])] for t in history
    ]
    return json.dumps(steps, separators=(",", ":"))


def _history(value: str | None) -> tuple[Transition, ...]:
    steps = json.loads(value) if value else []
    return tuple(Transition(Status(s[0]), datetime.fromisoformat(s[1]), s[2] if len(s) > 2 else None) for s in steps)


def _notification(entity: Any) -> Notification:
    return Notification(
        id=entity["RowKey"],
        order_id=entity["PartitionKey"],
        channel=Channel(entity["ch"]),
        status=Status(entity["st"]),
        status_time=entity["stt"],
        address=entity.get("addr"),
        recipient=RecipientSpec.from_json(json.loads(entity["rcp"])),
        name=entity.get("name"),
        organization_number=entity.get("orgno"),
        description=entity.get("desc"),
        reference=entity.get("ref"),
        attempt=int_of(entity.get("att", 0)),
        failures=int_of(entity.get("fails", 0)),
        expiry=entity.get("exp"),
        version=etag_of(entity),
        history=_history(entity.get("hist")),
    )


def _ref_partition(channel: Channel, reference: str) -> str:
    return escape_key(f"~ref|{channel.value}|{reference}")


def _owed_entity(entry: OwedEvents) -> dict[str, Any]:
    payload = json.dumps(list(entry.events), separators=(",", ":")).encode()
    return {"PartitionKey": entry.order_id, "RowKey": entry.key, "t": entry.stored_at, **pack(payload, "d")}


def _owed(entity: Any) -> OwedEvents:
    events = json.loads(unpack(entity, "d") or b"[]")
    return OwedEvents(entity["PartitionKey"], entity["RowKey"], entity["t"], tuple(events))


def _bucket(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


class TableNotificationStore:
    def __init__(self, service: TableServiceClient) -> None:
        self._table = service.get_table_client(NOTIFICATIONS_TABLE)
        self._marked: OrderedDict[str, None] = OrderedDict()  # ~owed markers this process wrote

    async def insert(self, notifications: Sequence[Notification]) -> None:
        entities = [_notification_entity(n) for n in notifications]
        by_partition: dict[str, list[dict[str, Any]]] = {}
        for entity in entities:
            by_partition.setdefault(entity["PartitionKey"], []).append(entity)
        for group in by_partition.values():
            chunks = [group[i : i + TRANSACTION_OPERATIONS] for i in range(0, len(group), TRANSACTION_OPERATIONS)]
            await asyncio.gather(*(self._insert_chunk(chunk) for chunk in chunks))

    async def _insert_chunk(self, chunk: list[dict[str, Any]]) -> None:
        try:
            await submit_transaction(self._table, [("create", entity) for entity in chunk])
        except TableTransactionError as error:
            if str(getattr(error, "error_code", "")) != "EntityAlreadyExists":
                raise
            # A replay after a crash: some exist already. Insert the rest one by one.
            for entity in chunk:
                with contextlib.suppress(ResourceExistsError):
                    await self._table.create_entity(entity)

    async def of_order(self, order_id: str) -> list[Notification]:
        # The partition's notifications, not its outbox entries (``~o``).
        query = self._table.query_entities("PartitionKey eq @pk and RowKey lt '~'", parameters={"pk": order_id})
        return [_notification(entity) async for entity in query]

    async def change(
        self,
        order_id: str,
        ids: Sequence[str],
        decide: Decide,
        *,
        known: Sequence[Notification] = (),
        announce: Announce | None = None,
    ) -> Changed:
        remaining = list(dict.fromkeys(ids))
        held = {n.id: n for n in known if n.version is not None}
        changed: list[Notification] = []
        moved: list[Notification] = []
        owed: list[OwedEvents] = []
        size = TRANSACTION_OPERATIONS - 1 if announce else TRANSACTION_OPERATIONS  # room for the outbox entry
        for _ in range(_MAX_CHANGE_ROUNDS):
            if not remaining:
                break
            unknown = [i for i in remaining if i not in held]
            current = [held[i] for i in remaining if i in held]
            current += [_notification(entity) for entity in await query_keys(self._table, order_id, unknown)]
            held = {}  # a held version that lost a race is read again in the next round
            updates = [(n, new) for n in current if (new := decide(n)) is not None]
            if not updates:
                break
            if announce is not None and any(old.status is not new.status for old, new in updates):
                await self._mark_owed(order_id, announce.at)
            chunks = [updates[i : i + size] for i in range(0, len(updates), size)]
            outcomes = await asyncio.gather(*(self._update_chunk(order_id, chunk, announce) for chunk in chunks))
            remaining = []
            for chunk, outcome in zip(chunks, outcomes, strict=True):
                if outcome is None:
                    remaining.extend(old.id for old, _ in chunk)
                    continue
                etags, entry = outcome
                for (old, new), etag in zip(chunk, etags, strict=True):
                    changed.append(replace(new, version=etag))
                    if old.status is not new.status:
                        moved.append(changed[-1])
                if entry is not None:
                    owed.append(entry)
        else:
            log.warning("notifications kept changing under us", extra={"order_id": order_id, "left": len(remaining)})
        return Changed(changed, moved, owed)

    async def _update_chunk(
        self, order_id: str, chunk: list[tuple[Notification, Notification]], announce: Announce | None
    ) -> tuple[list[str | None], OwedEvents | None] | None:
        """The new versions and the outbox entry written with them, or None when another writer changed
        one of the chunk's notifications first (then nothing of the chunk was written)."""
        operations: list[Any] = [
            (
                "update",
                _notification_entity(new),
                {"mode": UpdateMode.REPLACE, "etag": old.version, "match_condition": MatchConditions.IfNotModified},
            )
            for old, new in chunk
        ]
        entry: OwedEvents | None = None
        if announce is not None:
            events = tuple(announce.event(new) for old, new in chunk if old.status is not new.status)
            if events:
                key = f"{OWED_PREFIX}{time_key(announce.at)}{uuid.uuid4().hex[:12]}"
                entry = OwedEvents(order_id, key, announce.at, events)
                operations.append(("create", _owed_entity(entry)))
        try:
            results = await submit_transaction(self._table, operations)
        except TableTransactionError as error:
            code = str(getattr(error, "error_code", ""))
            if code in ("UpdateConditionNotSatisfied", "ConditionNotMet", "ResourceNotFound"):
                return None
            raise
        return [result.get("etag") for result in results[: len(chunk)]], entry

    async def _mark_owed(self, order_id: str, at: datetime) -> None:
        """Lists the order for the sweep before its outbox entries are written: once a minute per order
        and process, as the event log touches its resource directory."""
        marker = f"{time_key(_bucket(at))}|{order_id}"
        if marker in self._marked:
            return
        await self._table.upsert_entity({"PartitionKey": OWED_PARTITION, "RowKey": marker}, mode=UpdateMode.REPLACE)
        self._marked[marker] = None
        while len(self._marked) > 4096:
            self._marked.popitem(last=False)

    async def owed(self, stored_before: datetime, limit: int) -> list[OwedEvents]:
        markers: list[str] = []
        query = self._table.query_entities(
            "PartitionKey eq @pk and RowKey lt @until",
            parameters={"pk": OWED_PARTITION, "until": time_key(_bucket(stored_before) + OWED_BUCKET)},
            select=["RowKey"],
            results_per_page=min(limit, 1000),
        )
        async for entity in query:
            markers.append(entity["RowKey"])
            if len(markers) >= limit:
                break
        by_order: dict[str, list[str]] = {}
        for marker in markers:
            by_order.setdefault(marker.partition("|")[2], []).append(marker)
        slots = asyncio.Semaphore(POINT_READ_CONCURRENCY)

        async def sweep(order_id: str, markers: list[str]) -> list[OwedEvents]:
            async with slots:
                query = self._table.query_entities(
                    "PartitionKey eq @pk and RowKey ge @start and RowKey lt @end",
                    parameters={"pk": order_id, "start": OWED_PREFIX, "end": "~p"},
                )
                entries = [_owed(entity) async for entity in query]
                if not entries:  # all published: the markers are done once no late change can still land
                    done = time_key(stored_before - OWED_BUCKET - _OWED_MARKER_SLACK)
                    for marker in markers:
                        if marker < done:
                            with contextlib.suppress(ResourceNotFoundError):
                                await self._table.delete_entity(OWED_PARTITION, marker)
                return [entry for entry in entries if entry.stored_at < stored_before]

        found = await asyncio.gather(*(sweep(order_id, ms) for order_id, ms in by_order.items()))
        return [entry for entries in found for entry in entries]

    async def clear_owed(self, owed: Sequence[OwedEvents]) -> None:
        async def clear(entry: OwedEvents) -> None:
            with contextlib.suppress(ResourceNotFoundError):
                await self._table.delete_entity(entry.order_id, entry.key)

        await asyncio.gather(*(clear(entry) for entry in owed))

    async def index_reference(
        self, channel: Channel, reference: str, creator: str, order_id: str, notification_id: str
    ) -> None:
        await self._table.upsert_entity(
            {
                "PartitionKey": _ref_partition(channel, reference),
                "RowKey": "r",
                "creator": creator,
                "orderId": order_id,
                "notificationId": notification_id,
            },
            mode=UpdateMode.REPLACE,
        )

    async def find_reference(self, channel: Channel, reference: str) -> tuple[str, str, str] | None:
        try:
            entity = await self._table.get_entity(_ref_partition(channel, reference), "r")
        except ResourceNotFoundError:
            return None
        return entity["creator"], entity["orderId"], entity["notificationId"]
