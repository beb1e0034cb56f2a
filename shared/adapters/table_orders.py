"""Notification orders on Azure Table Storage.

Table ``notificationorders`` (docs/notifications.md has the full picture):

- PK ``<creator>``  RK ``o<orderId>``: the order (recipients packed in binary chunks)
- PK ``<creator>``  RK ``i<sha256(idempotencyId)>``: the idempotency key, created in ONE
  entity-group transaction with the order, so a reused key never makes a second order
- PK ``<creator>``  RK ``t<inverted created time>|<orderId>``: the order's listing row (its summary,
  newest first), written in the transaction that creates or updates the order
- PK ``~due``       RK ``<sendTime>|<orderId>``: orders not yet processed, for the due timer
- PK ``~expiry``    RK ``<expiry>|<orderId>``: orders with notifications to check for TTL
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableServiceClient

from shared.adapters.table_transactions import submit_transaction
from shared.adapters.tables import escape_key, etag_of, pack, time_key, unpack
from shared.notifications.model import (
    ContentType,
    EmailTemplate,
    NotificationChannel,
    Order,
    OrderStatus,
    RecipientLookup,
    RecipientSpec,
    SendingTimePolicy,
    SmsTemplate,
)
from shared.notifications.ports import Conflict, OrderExists, OrderSummary

ORDERS_TABLE = "notificationorders"
DUE_PARTITION = "~due"
EXPIRY_PARTITION = "~expiry"
LISTING_PREFIX = "t"
_LISTING_END = "u"  # the first key after every listing row
_TIME_KEY_MAX = 10**20 - 1  # time_key is 20 digits


def listing_key(order: Order) -> str:
    """The order's listing row key: newest first (the created time inverted), then the id. To the
    millisecond, so the key computed from an order read back is the one its creation wrote."""
    created = order.created.replace(microsecond=order.created.microsecond // 1000 * 1000)
    return f"{LISTING_PREFIX}{_TIME_KEY_MAX - int(time_key(created)):020d}|{order.id}"


def _listing_entity(order: Order) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": escape_key(order.creator),
        "RowKey": listing_key(order),
        "orderId": order.id,
        "created": order.created,
        "channel": order.channel.value,
        "status": order.status.value,
        "sendTime": order.requested_send_time,
        "recipients": len(order.recipients),
    }
    optional = {"statusTime": order.status_time, "ref": order.senders_reference, "resource": order.resource_id}
    entity.update({key: value for key, value in optional.items() if value is not None})
    return entity


def _summary(entity: Any) -> OrderSummary:
    return OrderSummary(
        id=entity["orderId"],
        created=entity["created"],
        channel=entity["channel"],
        status=entity["status"],
        status_time=entity.get("statusTime"),
        senders_reference=entity.get("ref"),
        requested_send_time=entity["sendTime"],
        resource_id=entity.get("resource"),
        recipients=int(entity["recipients"]),
    )


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
        **pack(recipients, "r"),
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
    specs = [RecipientSpec.from_json(r) for r in json.loads(unpack(entity, "r") or b"[]")] if recipients else []
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
        version=etag_of(entity) if recipients else None,
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
            results = await submit_transaction(
                self._table, [("create", entity), ("create", key), ("create", _listing_entity(order))]
            )
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

    async def page(self, creator: str, after: str | None, limit: int) -> tuple[list[OrderSummary], str | None]:
        rows: list[Any] = []
        async for entity in self._table.query_entities(
            "PartitionKey eq @pk and RowKey gt @after and RowKey lt @end",
            # ``after`` comes from a client's cursor: never let it reach below the listing rows.
            parameters={
                "pk": escape_key(creator),
                "after": max(after or LISTING_PREFIX, LISTING_PREFIX),
                "end": _LISTING_END,
            },
            results_per_page=limit + 1,
        ):
            rows.append(entity)
            if len(rows) > limit:
                break
        page = rows[:limit]
        return [_summary(row) for row in page], (page[-1]["RowKey"] if len(rows) > limit else None)

    async def update(self, order: Order) -> Order:
        if order.version is None:
            raise Conflict(order.id)
        operations: list[Any] = [
            (
                "update",
                _order_entity(order),
                {"mode": UpdateMode.REPLACE, "etag": order.version, "match_condition": MatchConditions.IfNotModified},
            ),
            # The listing row follows the order's status, in the same transaction.
            ("upsert", _listing_entity(order), {"mode": UpdateMode.REPLACE}),
        ]
        try:
            results = await submit_transaction(self._table, operations)
        except TableTransactionError as error:
            if str(getattr(error, "error_code", "")) in (
                "UpdateConditionNotSatisfied",
                "ConditionNotMet",
                "ResourceNotFound",
            ):
                raise Conflict(order.id) from error
            raise
        return replace(order, version=results[0].get("etag"))

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
