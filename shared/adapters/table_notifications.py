"""Notification orders, notifications, dead delivery reports and the send pause on Azure Table Storage.

Tables and keys (docs/notifications.md has the full picture):

- ``notificationorders``
  - PK ``<creator>``  RK ``o<orderId>``: the order (recipients packed in binary chunks)
  - PK ``<creator>``  RK ``i<sha256(idempotencyId)>``: the idempotency key, created in ONE
    entity-group transaction with the order, so a reused key never makes a second order
  - PK ``~due``       RK ``<sendTime>|<orderId>``: orders not yet processed, for the due timer
  - PK ``~expiry``    RK ``<expiry>|<orderId>``: orders with notifications to check for TTL
- ``notifications``
  - PK ``<orderId>``  RK ``<notificationId>``: one notification (per recipient address and channel)
  - PK ``~ref|<channel>|<reference>`` RK ``r``: gateway reference -> notification, for reports
  - PK ``<orderId>``  RK ``~o<time><random>``: an outbox entry, the status events a change owes,
    written in the change's transaction and deleted once they are published
  - PK ``~owed``      RK ``<minute>|<orderId>``: orders that may hold outbox entries, for the sweep
- ``notificationreports``: PK ``<channel>`` RK ``<reference>``: unmatched delivery reports
  (attempt counter; ``parked`` once over the bound: the dead-report store)
- ``notificationstate``: PK ``pause`` RK ``<channel>``: send paused until (HTTP 429)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient

from shared.adapters.table_transactions import submit_transaction
from shared.adapters.tables import escape_key
from shared.notifications.model import (
    Channel,
    ContentType,
    EmailTemplate,
    Notification,
    NotificationChannel,
    Order,
    OrderStatus,
    RecipientLookup,
    RecipientSpec,
    SendingTimePolicy,
    SmsTemplate,
    Status,
)
from shared.notifications.ports import (
    Announce,
    Changed,
    Conflict,
    Decide,
    OrderExists,
    OwedEvents,
    ReportAttempt,
)

log = logging.getLogger(__name__)

ORDERS_TABLE = "notificationorders"
NOTIFICATIONS_TABLE = "notifications"
REPORTS_TABLE = "notificationreports"
STATE_TABLE = "notificationstate"
TABLES = (ORDERS_TABLE, NOTIFICATIONS_TABLE, REPORTS_TABLE, STATE_TABLE)

DUE_PARTITION = "~due"
EXPIRY_PARTITION = "~expiry"
OWED_PARTITION = "~owed"
OWED_PREFIX = "~o"  # sorts after every notification id (a uuid) in the order's partition
OWED_BUCKET = timedelta(minutes=1)
# A marker is dropped only once its minute is this far behind the sweep's cutoff and its order holds no
# entry: a change whose transaction lands later than that after its marker would go unswept.
_OWED_MARKER_SLACK = timedelta(minutes=1)
TRANSACTION_OPERATIONS = 100
CHUNK_BYTES = 60 * 1024  # a binary property holds at most 64 KiB
POINT_READ_CONCURRENCY = 32
_MAX_CHANGE_ROUNDS = 8


def time_key(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S%f")


def _pack(payload: bytes, prefix: str) -> dict[str, bytes]:
    return {
        f"{prefix}{index:02d}": payload[start : start + CHUNK_BYTES]
        for index, start in enumerate(range(0, len(payload), CHUNK_BYTES))
    }


def _unpack(entity: dict[str, Any], prefix: str) -> bytes:
    chunks = sorted(
        (name, value) for name, value in entity.items() if name.startswith(prefix) and name[len(prefix) :].isdigit()
    )
    return b"".join(bytes(value) for _, value in chunks)


def _value(raw: Any) -> Any:
    return raw.value if hasattr(raw, "value") else raw


def _etag(entity: Any) -> str | None:
    metadata = getattr(entity, "metadata", None) or {}
    etag: str | None = metadata.get("etag")
    return etag


async def query_keys(table: TableClient, partition: str, row_keys: Sequence[str]) -> list[Any]:
    """Entities of one partition by row key, as concurrent point reads. A filter OR-ing row keys
    would save calls, but the service answers it by scanning the partition (an order of 10,000
    notifications, a registry of millions of people), and Azurite by scanning the table."""
    slots = asyncio.Semaphore(POINT_READ_CONCURRENCY)

    async def read(key: str) -> Any:
        async with slots:
            try:
                return await table.get_entity(partition, key)
            except ResourceNotFoundError:
                return None

    found = await asyncio.gather(*(read(key) for key in dict.fromkeys(row_keys)))
    return [entity for entity in found if entity is not None]


# ------------------------------------------------------------------------------------------ orders


def _order_entity(order: Order) -> dict[str, Any]:
    recipients = json.dumps([r.to_json() for r in order.recipients], separators=(",", ":")).encode()
    entity: dict[str, Any] = {
        "PartitionKey": escape_key(order.creator),
        "RowKey": f"o{order.id}",
        "creator": order.creator,
        "idem": order.idempotency_id,
        "sendTime": order.requested_send_time,
        "channel": order.channel.value,
        "ignoreReservation": order.ignore_reservation,
        "created": order.created,
        "status": order.status.value,
        **_pack(recipients, "r"),
    }
    optional: dict[str, Any] = {
        "ref": order.senders_reference,
        "resource": order.resource_id,
        "condition": order.condition_endpoint,
        "policy": order.sending_time_policy.value if order.sending_time_policy else None,
        "statusTime": order.status_time,
        "started": order.processing_started,
        "lookup": json.dumps(order.lookup.to_json()) if order.lookup else None,
    }
    if order.email_template is not None:
        t = order.email_template
        optional["email"] = json.dumps(
            {"subject": t.subject, "body": t.body, "contentType": t.content_type.value, "fromAddress": t.from_address}
            | ({"values": dict(t.values)} if t.values else {})
        )
    if order.sms_template is not None:
        s = order.sms_template
        optional["sms"] = json.dumps(
            {"body": s.body, "sender": s.sender_number} | ({"values": dict(s.values)} if s.values else {})
        )
    entity.update({key: value for key, value in optional.items() if value is not None})
    return entity


# Every property _order_entity writes except the packed recipients (r00, r01, ...): what a read
# without recipients selects.
_ORDER_FIELDS = (
    "creator", "idem", "sendTime", "channel", "ignoreReservation", "created", "status", "ref", "resource",
    "condition", "policy", "statusTime", "started", "lookup", "email", "sms",
)  # fmt: skip


def _order(entity: Any, *, recipients: bool = True) -> Order:
    email = json.loads(entity["email"]) if entity.get("email") else None
    sms = json.loads(entity["sms"]) if entity.get("sms") else None
    specs = [RecipientSpec.from_json(r) for r in json.loads(_unpack(entity, "r") or b"[]")] if recipients else []
    return Order(
        id=entity["RowKey"][1:],
        creator=entity["creator"],
        idempotency_id=entity["idem"],
        senders_reference=entity.get("ref"),
        requested_send_time=entity["sendTime"],
        channel=NotificationChannel(entity["channel"]),
        email_template=EmailTemplate(
            email["subject"],
            email["body"],
            ContentType(email["contentType"]),
            email.get("fromAddress"),
            email.get("values") or {},
        )
        if email
        else None,
        sms_template=SmsTemplate(sms["body"], sms.get("sender"), sms.get("values") or {}) if sms else None,
        recipients=specs,
        ignore_reservation=bool(entity.get("ignoreReservation")),
        resource_id=entity.get("resource"),
        condition_endpoint=entity.get("condition"),
        sending_time_policy=SendingTimePolicy(entity["policy"]) if entity.get("policy") else None,
        created=entity["created"],
        status=OrderStatus(entity["status"]),
        status_time=entity.get("statusTime"),
        lookup=RecipientLookup.from_json(json.loads(entity["lookup"])) if entity.get("lookup") else None,
        processing_started=entity.get("started"),
        version=_etag(entity) if recipients else None,
    )


def idempotency_key(idempotency_id: str) -> str:
    return "i" + hashlib.sha256(idempotency_id.encode()).hexdigest()[:40]


class TableOrderStore:
    def __init__(self, service: TableServiceClient) -> None:
        self._table = service.get_table_client(ORDERS_TABLE)

    async def create(self, order: Order) -> Order:
        entity = _order_entity(order)
        key = {
            "PartitionKey": entity["PartitionKey"],
            "RowKey": idempotency_key(order.idempotency_id),
            "orderId": order.id,
        }
        try:
            results = await submit_transaction(self._table, [("create", entity), ("create", key)])
        except TableTransactionError as error:
            if str(getattr(error, "error_code", "")) != "EntityAlreadyExists":
                raise
            existing = await self.by_idempotency_id(order.creator, order.idempotency_id)
            if existing is None:
                raise
            raise OrderExists(existing) from error
        return replace(order, version=results[0].get("etag"))

    async def by_idempotency_id(self, creator: str, idempotency_id: str) -> Order | None:
        try:
            key = await self._table.get_entity(escape_key(creator), idempotency_key(idempotency_id))
        except ResourceNotFoundError:
            return None
        return await self.get(creator, key["orderId"])

    async def get(self, creator: str, order_id: str, *, recipients: bool = True) -> Order | None:
        select = None if recipients else ["RowKey", *_ORDER_FIELDS]
        try:
            entity = await self._table.get_entity(escape_key(creator), f"o{order_id}", select=select)
        except ResourceNotFoundError:
            return None
        return _order(entity, recipients=recipients)

    async def update(self, order: Order) -> Order:
        if order.version is None:
            raise Conflict(order.id)
        try:
            result = await self._table.update_entity(
                _order_entity(order),
                mode=UpdateMode.REPLACE,
                etag=order.version,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceNotFoundError, HttpResponseError) as error:
            if isinstance(error, ResourceNotFoundError) or getattr(error, "status_code", None) == 412:
                raise Conflict(order.id) from error
            raise
        return replace(order, version=result.get("etag"))

    async def schedule(self, order: Order) -> None:
        await self._table.upsert_entity(
            {
                "PartitionKey": DUE_PARTITION,
                "RowKey": f"{time_key(order.requested_send_time)}|{order.id}",
                "creator": order.creator,
            },
            mode=UpdateMode.REPLACE,
        )

    async def unschedule(self, order: Order) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            await self._table.delete_entity(DUE_PARTITION, f"{time_key(order.requested_send_time)}|{order.id}")

    async def due(self, until: datetime, limit: int) -> list[tuple[str, str]]:
        return [(creator, oid) for creator, oid, _ in await self._index(DUE_PARTITION, until, limit)]

    async def _index(self, partition: str, until: datetime, limit: int) -> list[tuple[str, str, datetime]]:
        found: list[tuple[str, str, datetime]] = []
        query = self._table.query_entities(
            "PartitionKey eq @pk and RowKey le @until",
            parameters={"pk": partition, "until": f"{time_key(until)}|~"},
            results_per_page=min(limit, 1000),
        )
        async for entity in query:
            stamp, _, order_id = entity["RowKey"].partition("|")
            at = datetime.strptime(stamp, "%Y%m%d%H%M%S%f").replace(tzinfo=UTC)
            found.append((entity["creator"], order_id, at))
            if len(found) >= limit:
                break
        return found

    async def watch_expiry(self, creator: str, order_id: str, at: datetime) -> None:
        await self._table.upsert_entity(
            {"PartitionKey": EXPIRY_PARTITION, "RowKey": f"{time_key(at)}|{order_id}", "creator": creator},
            mode=UpdateMode.REPLACE,
        )

    async def expiring(self, until: datetime, limit: int) -> list[tuple[str, str, datetime]]:
        return await self._index(EXPIRY_PARTITION, until, limit)

    async def unwatch_expiry(self, creator: str, order_id: str, at: datetime) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            await self._table.delete_entity(EXPIRY_PARTITION, f"{time_key(at)}|{order_id}")


# ----------------------------------------------------------------------------------- notifications


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
    }
    entity.update({key: value for key, value in optional.items() if value is not None})
    return entity


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
        attempt=int(_value(entity.get("att", 0))),
        failures=int(_value(entity.get("fails", 0))),
        expiry=entity.get("exp"),
        version=_etag(entity),
    )


def _ref_partition(channel: Channel, reference: str) -> str:
    return escape_key(f"~ref|{channel.value}|{reference}")


def _owed_entity(entry: OwedEvents) -> dict[str, Any]:
    payload = json.dumps(list(entry.events), separators=(",", ":")).encode()
    return {"PartitionKey": entry.order_id, "RowKey": entry.key, "t": entry.stored_at, **_pack(payload, "d")}


def _owed(entity: Any) -> OwedEvents:
    events = json.loads(_unpack(entity, "d") or b"[]")
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


# ---------------------------------------------------------------------------------- dead reports


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
            attempts = int(_value(entity["attempts"])) + 1
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
                    entity, mode=UpdateMode.REPLACE, etag=_etag(entity), match_condition=MatchConditions.IfNotModified
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
                "attempts": int(_value(entity["attempts"])),
                "firstSeen": entity["firstSeen"],
                "reason": entity.get("reason"),
                "payload": entity.get("payload"),
            }
            async for entity in self._table.query_entities(query, parameters=parameters)
        ]


# ------------------------------------------------------------------------------------------ pause


class TableSendPause:
    def __init__(self, service: TableServiceClient) -> None:
        self._table = service.get_table_client(STATE_TABLE)

    async def paused_until(self, channel: Channel) -> datetime | None:
        try:
            entity = await self._table.get_entity("pause", channel.value)
        except ResourceNotFoundError:
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
