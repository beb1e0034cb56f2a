"""Subscriptions on Table Storage: the matching index, the owners' view, dead letters and the delivery log.

- ``subscriptions``: the matching index and the source of truth. PartitionKey = index key
  (resource + subject filter, or alternative-subject filter, or none), RowKey = id. An event
  reads at most three partitions: its subject's, its alternative subject's and the
  no-subject one, so matching cost follows the matches, not the number of subscriptions.
- ``subscriptionowners``: per consumer, ``s:<id>`` (points at the index entry, lists in
  creation order) and ``h:<identity hash>`` (makes an identical create return the existing
  subscription); both written in one transaction.
- ``deadletters``: per subscription, oldest first.
- ``deliveries<yyyymmdd>``: one table per day, dropped whole after the retention; PartitionKey =
  a shard of the subscription id, so one message's attempts are written in a few transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableServiceClient
from cryptography.exceptions import InvalidTag

from shared.adapters.table_transactions import submit_transaction
from shared.adapters.tables import escape_key, int64
from shared.identity.secret_box import SecretBox
from shared.notifications.event_templates import NotificationSpec
from shared.subscriptions.model import Filters, Secrets, Status, Subscription
from shared.subscriptions.ports import Attempt, DeadLetter, Settled

log = logging.getLogger(__name__)

INDEX_TABLE = "subscriptions"
OWNERS_TABLE = "subscriptionowners"
DEAD_LETTERS_TABLE = "deadletters"
DELIVERY_TABLE_PREFIX = "deliveries"
DELIVERY_SHARDS = 16
_SECRET_FIELDS = ("secret", "previousSecret", "upcomingSecret")  # sealed at rest
_OUTAGE_PATIENCE_SECONDS = 30.0  # how long the delivery log waits for storage it cannot reach


def _to_entity(subscription: Subscription) -> dict[str, Any]:
    filters = subscription.filters
    return {
        "PartitionKey": escape_key(subscription.index_key),
        "RowKey": subscription.id,
        "consumer": subscription.consumer,
        "endpoint": subscription.endpoint,
        "resource": filters.resource,
        "source": filters.source,
        "subject": filters.subject,
        "alternativesubject": filters.alternativesubject,
        "type": filters.type,
        "status": subscription.status.value,
        "created": subscription.created,
        "secret": subscription.secrets.current,
        "previousSecret": subscription.secrets.previous,
        "previousExpires": subscription.secrets.previous_expires,
        "upcomingSecret": subscription.secrets.upcoming,
        "failingSince": subscription.failing_since,
        "disabledReason": subscription.disabled_reason,
        "allowedRate": subscription.allowed_rate,
        # Notification subscriptions (issue 6): the order fields as JSON; None for webhooks.
        "notification": subscription.notification.canonical() if subscription.notification else None,
    }


def _from_entity(entity: Mapping[str, Any]) -> Subscription:
    return Subscription(
        id=entity["RowKey"],
        consumer=entity["consumer"],
        endpoint=entity["endpoint"],
        filters=Filters(
            resource=entity["resource"],
            source=entity.get("source"),
            subject=entity.get("subject"),
            alternativesubject=entity.get("alternativesubject"),
            type=entity.get("type"),
        ),
        status=Status(entity["status"]),
        created=entity["created"],
        secrets=Secrets(
            entity["secret"], entity.get("previousSecret"), entity.get("previousExpires"), entity.get("upcomingSecret")
        ),
        failing_since=entity.get("failingSince"),
        disabled_reason=entity.get("disabledReason"),
        allowed_rate=entity.get("allowedRate"),
        notification=_notification(entity.get("notification")),
    )


def _notification(stored: str | None) -> NotificationSpec | None:
    return NotificationSpec.from_json(json.loads(stored)) if stored else None


class TableSubscriptionStore:
    def __init__(self, service: TableServiceClient, *, box: SecretBox | None = None) -> None:
        self._index = service.get_table_client(INDEX_TABLE)
        # Seals signing secrets at rest; Herald's wiring always passes one (None only for tools that
        # index synthetic subscriptions, such as the matching benchmark).
        self._box = box
        self._owners = service.get_table_client(OWNERS_TABLE)

    async def _sealed(self, subscription: Subscription) -> dict[str, Any]:
        entity = _to_entity(subscription)
        if self._box is not None:
            for field in _SECRET_FIELDS:
                if entity.get(field):
                    # Bound to the subscription: a sealed value copied to another row does not open.
                    entity[field] = await self._box.seal(entity[field], bound_to=subscription.id)
        return entity

    async def _opened(self, entity: Mapping[str, Any]) -> Subscription:
        if self._box is not None:
            entity = dict(entity)
            for field in _SECRET_FIELDS:
                if entity.get(field):
                    entity[field] = await self._box.open(entity[field], bound_to=entity["RowKey"])
        return _from_entity(entity)

    async def _readable(self, entity: Mapping[str, Any]) -> Subscription | None:
        """The subscription, or None when its sealed secret does not open (tampered with, or moved from
        another row): one such row must not stop the others from being listed or matched. Reading it
        alone (``get_by_key``) still fails, so its deliveries are retried and dead-lettered, not dropped."""
        try:
            return await self._opened(entity)
        except (InvalidTag, ValueError):  # ValueError: a mangled sealed value (prefix, base64)
            log.error("the sealed secret of subscription %s does not open; it is left out", entity.get("RowKey"))
            return None

    async def create(self, subscription: Subscription, identity: str) -> tuple[Subscription, bool]:
        owner = escape_key(subscription.consumer)
        list_key = f"s:{subscription.created.strftime('%Y%m%d%H%M%S%f')}:{subscription.id}"
        try:
            await submit_transaction(
                self._owners,
                [
                    ("create", {"PartitionKey": owner, "RowKey": f"h:{identity}", "id": subscription.id}),
                    (
                        "create",
                        {
                            "PartitionKey": owner,
                            "RowKey": f"i:{subscription.id}",
                            "indexKey": subscription.index_key,
                            "listKey": list_key,
                            "identity": identity,
                        },
                    ),
                    (
                        "create",
                        {
                            "PartitionKey": owner,
                            "RowKey": list_key,
                            "id": subscription.id,
                            "indexKey": subscription.index_key,
                        },
                    ),
                ],
            )
        except TableTransactionError as error:
            if getattr(error, "error_code", None) != "EntityAlreadyExists":
                raise
            existing_id = (await self._owners.get_entity(owner, f"h:{identity}"))["id"]
            found = await self.get(subscription.consumer, existing_id)
            if found is not None:
                return found, False
            # The owner rows exist but the index entry does not (a create died half-way): finish it.
            row = await self._owners.get_entity(owner, f"i:{existing_id}")
            subscription = replace(subscription, id=existing_id, created=_created_of(row["listKey"]))
        with contextlib.suppress(ResourceExistsError):
            await self._index.create_entity(await self._sealed(subscription))
        return subscription, True

    async def get(self, consumer: str, subscription_id: str) -> Subscription | None:
        try:
            row = await self._owners.get_entity(escape_key(consumer), f"i:{subscription_id}")
        except ResourceNotFoundError:
            return None
        return await self.get_by_key(row["indexKey"], subscription_id)

    async def get_by_key(self, index_key: str, subscription_id: str) -> Subscription | None:
        try:
            return await self._opened(await self._index.get_entity(escape_key(index_key), subscription_id))
        except ResourceNotFoundError:
            return None

    async def id_range(self, index_key: str, first_id: str, last_id: str) -> list[Subscription]:
        query = "PartitionKey eq @pk and RowKey ge @first and RowKey le @last"
        parameters = {"pk": escape_key(index_key), "first": first_id, "last": last_id}
        found = [await self._readable(e) async for e in self._index.query_entities(query, parameters=parameters)]
        return [subscription for subscription in found if subscription is not None]

    async def page(self, consumer: str, after: str | None, limit: int) -> tuple[list[Subscription], str | None]:
        query = "PartitionKey eq @pk and RowKey gt @after and RowKey lt 's;'"
        rows: list[Mapping[str, Any]] = []
        async for entity in self._owners.query_entities(
            # ``after`` comes from the client: never let it reach below the listing rows (i:, h:).
            query,
            parameters={"pk": escape_key(consumer), "after": max(after or "s:", "s:")},
            results_per_page=limit + 1,
        ):
            rows.append(entity)
            if len(rows) > limit:
                break
        page, more = rows[:limit], len(rows) > limit
        found = await asyncio.gather(*(self._listed(row["indexKey"], row["id"]) for row in page))
        return [s for s in found if s is not None], (page[-1]["RowKey"] if more else None)

    async def _listed(self, index_key: str, subscription_id: str) -> Subscription | None:
        try:
            return await self._readable(await self._index.get_entity(escape_key(index_key), subscription_id))
        except ResourceNotFoundError:
            return None

    async def delete(self, subscription: Subscription) -> None:
        # The index entry first: from here on no event matches the subscription.
        with contextlib.suppress(ResourceNotFoundError):
            await self._index.delete_entity(escape_key(subscription.index_key), subscription.id)
        owner = escape_key(subscription.consumer)
        try:
            row = await self._owners.get_entity(owner, f"i:{subscription.id}")
        except ResourceNotFoundError:
            return
        await submit_transaction(
            self._owners,
            [
                ("delete", {"PartitionKey": owner, "RowKey": row["listKey"]}),
                ("delete", {"PartitionKey": owner, "RowKey": f"h:{row['identity']}"}),
                ("delete", {"PartitionKey": owner, "RowKey": f"i:{subscription.id}"}),
            ],
        )

    async def update(
        self, index_key: str, subscription_id: str, mutate: Callable[[Subscription], Subscription | None]
    ) -> Subscription | None:
        for _ in range(20):
            try:
                entity = await self._index.get_entity(escape_key(index_key), subscription_id)
            except ResourceNotFoundError:
                return None
            changed = mutate(await self._opened(entity))
            if changed is None:
                return None
            try:
                await self._index.update_entity(
                    await self._sealed(changed),
                    mode=UpdateMode.REPLACE,
                    etag=entity.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
            except ResourceModifiedError:
                continue  # changed meanwhile by another worker: apply the change to the new state
            except ResourceNotFoundError:
                return None
            return changed
        raise RuntimeError(f"subscription {subscription_id} kept changing under concurrent updates")

    async def matching(self, index_keys: Sequence[str]) -> Mapping[str, list[Subscription]]:
        async def partition(key: str) -> tuple[str, list[Subscription]]:
            query = "PartitionKey eq @pk and status eq 'active'"
            found = [
                await self._readable(e)
                async for e in self._index.query_entities(query, parameters={"pk": escape_key(key)})
            ]
            return key, [subscription for subscription in found if subscription is not None]

        return dict(await asyncio.gather(*(partition(key) for key in set(index_keys))))


def _created_of(list_key: str) -> datetime:
    return datetime.strptime(list_key.split(":")[1], "%Y%m%d%H%M%S%f").replace(tzinfo=UTC)


def _shard(subscription_id: str) -> str:
    return f"{int(hashlib.sha256(subscription_id.encode()).hexdigest()[:4], 16) % DELIVERY_SHARDS:02d}"


def _day_table(day: datetime) -> str:
    return f"{DELIVERY_TABLE_PREFIX}{day.strftime('%Y%m%d')}"


_EPOCH_LIMIT = 10**13
# Marker rows of settled deliveries sort after every attempt's RowKey (``<subscription id>|…``).
_SETTLED_PREFIX = "~settled|"


class TableDeliveryLog:
    """Attempts by day table, newest first within a subscription; tables older than the retention are dropped."""

    def __init__(self, service: TableServiceClient, *, retention: timedelta = timedelta(days=14)) -> None:
        self._service = service
        self._retention = retention
        self._created: set[str] = set()

    async def _table(self, name: str) -> Any:
        if name not in self._created:
            with contextlib.suppress(ResourceExistsError):
                await self._service.create_table(name)
            self._created.add(name)
        return self._service.get_table_client(name)

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
            groups[_day_table(attempt.at)].append(
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
            marked = _day_table(settled.at)
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
                    table = await self._table(table_name)
                    for start in range(0, len(entities), 100):
                        await submit_transaction(table, [("upsert", e) for e in entities[start : start + 100]])
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
        for day in sorted({_day_table(now - timedelta(days=1)), _day_table(now)}):
            table = self._service.get_table_client(day)
            with contextlib.suppress(ResourceNotFoundError):  # no day table yet: nothing recorded that day
                async for entity in table.query_entities(query, parameters=parameters, select=["m"]):
                    found.update(filter(None, (entity.get("m") or "").split(",")))
        return found

    async def attempts(self, subscription_id: str, limit: int, before: str | None) -> tuple[list[Attempt], str | None]:
        """Newest first across the day tables; ``before`` is ``<day>/<last RowKey seen>``."""
        day_names = sorted(await self._day_tables(), reverse=True)
        start_day, start_key = before.split("/", 1) if before and "/" in before else ("99999999", "")
        found: list[Attempt] = []
        for table_name in day_names:
            day = table_name[len(DELIVERY_TABLE_PREFIX) :]
            if day > start_day:
                continue
            lower = start_key if day == start_day and start_key else f"{subscription_id}|"
            table = self._service.get_table_client(table_name)
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
        cutoff = _day_table(now - self._retention)
        dropped = 0
        for name in await self._day_tables():
            if name < cutoff:
                await self._service.delete_table(name)
                self._created.discard(name)
                dropped += 1
        return dropped

    async def _day_tables(self) -> list[str]:
        # Listed whole and filtered here: Azurite ignores a $filter on the table list.
        return [t.name async for t in self._service.list_tables() if t.name.startswith(DELIVERY_TABLE_PREFIX)]


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


class TableDeadLetterStore:
    def __init__(self, service: TableServiceClient) -> None:
        self._table = service.get_table_client(DEAD_LETTERS_TABLE)

    @staticmethod
    def _key(letter: DeadLetter) -> str:
        return f"{letter.dead_at.strftime('%Y%m%d%H%M%S%f')}|{letter.delivery_id}"

    async def add(self, letters: Sequence[DeadLetter]) -> None:
        by_subscription: dict[str, list[DeadLetter]] = defaultdict(list)
        for letter in letters:
            by_subscription[letter.subscription_id].append(letter)
        for subscription_id, group in by_subscription.items():
            for start in range(0, len(group), 100):
                await submit_transaction(
                    self._table,
                    [
                        (
                            "upsert",
                            {
                                "PartitionKey": subscription_id,
                                "RowKey": self._key(letter),
                                "deliveryId": letter.delivery_id,
                                "resource": letter.resource,
                                "seq": int64(letter.seq),
                                "index": letter.index,
                                "eventId": letter.event_id,
                                "attempts": letter.attempts,
                                "firstAttemptAt": letter.first_attempt_at,
                                "deadAt": letter.dead_at,
                                "lastStatus": letter.last_status,
                                "lastError": (letter.last_error or "")[:1024] or None,
                            },
                        )
                        for letter in group[start : start + 100]
                    ],
                )

    @staticmethod
    def _from(entity: Mapping[str, Any]) -> DeadLetter:
        seq = entity["seq"]
        return DeadLetter(
            subscription_id=entity["PartitionKey"],
            delivery_id=entity["deliveryId"],
            resource=entity["resource"],
            seq=int(seq.value if hasattr(seq, "value") else seq),
            index=int(entity["index"]),
            event_id=entity.get("eventId") or "",
            attempts=int(entity.get("attempts") or 0),
            first_attempt_at=entity["firstAttemptAt"],
            dead_at=entity["deadAt"],
            last_status=entity.get("lastStatus"),
            last_error=entity.get("lastError"),
        )

    async def page(self, subscription_id: str, after: str | None, limit: int) -> tuple[list[DeadLetter], str | None]:
        query = "PartitionKey eq @pk and RowKey gt @after"
        found: list[DeadLetter] = []
        keys: list[str] = []
        async for entity in self._table.query_entities(
            query, parameters={"pk": subscription_id, "after": after or ""}, results_per_page=limit + 1
        ):
            found.append(self._from(entity))
            keys.append(entity["RowKey"])
            if len(found) > limit:
                return found[:limit], keys[limit - 1]
        return found, None

    async def take(self, subscription_id: str, since: datetime | None, limit: int) -> list[DeadLetter]:
        lower = since.strftime("%Y%m%d%H%M%S%f") if since else ""
        query = "PartitionKey eq @pk and RowKey ge @lower"
        found: list[DeadLetter] = []
        async for entity in self._table.query_entities(
            query, parameters={"pk": subscription_id, "lower": lower}, results_per_page=limit
        ):
            found.append(self._from(entity))
            if len(found) >= limit:
                break
        return found

    async def remove(self, letters: Sequence[DeadLetter]) -> None:
        by_subscription: dict[str, list[DeadLetter]] = defaultdict(list)
        for letter in letters:
            by_subscription[letter.subscription_id].append(letter)
        for subscription_id, group in by_subscription.items():
            for start in range(0, len(group), 100):
                await submit_transaction(
                    self._table,
                    [
                        ("delete", {"PartitionKey": subscription_id, "RowKey": self._key(letter)})
                        for letter in group[start : start + 100]
                    ],
                )
