"""The subscription store on Table Storage: the matching index and the owners' view, written together.

- ``subscriptions``: the matching index and the source of truth. PartitionKey = index key
  (resource + subject filter, or alternative-subject filter, or none), RowKey = id. An event
  reads at most three partitions: its subject's, its alternative subject's and the
  no-subject one, so matching cost follows the matches, not the number of subscriptions.
- ``subscriptionowners``: per consumer, ``s:<id>`` (points at the index entry, lists in
  creation order) and ``h:<identity hash>`` (makes an identical create return the existing
  subscription); both written in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableServiceClient
from cryptography.exceptions import InvalidTag

from shared.adapters.table_transactions import submit_transaction
from shared.adapters.tables import escape_key
from shared.identity.secret_box import SecretBox
from shared.notifications.event_orders import NotificationSpec
from shared.subscriptions.model import Filters, Secrets, Status, Subscription

log = logging.getLogger(__name__)

INDEX_TABLE = "subscriptions"
OWNERS_TABLE = "subscriptionowners"
_SECRET_FIELDS = ("secret", "previousSecret", "upcomingSecret")  # sealed at rest


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
        # Notification subscriptions: the order fields as JSON; None for webhooks.
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
