"""The subscription store on Table Storage: the matching index and the owners' view, written together.

- ``subscriptions``: the matching index and the source of truth. PartitionKey = index key
  (resource + subject filter, or alternative-subject filter, or none), RowKey = id. An event
  reads at most three partitions: its subject's, its alternative subject's and the
  no-subject one, so matching cost follows the matches, not the number of subscriptions.
- ``subscriptionowners``: per consumer, ``s:<id>`` (points at the index entry, lists in
  creation order) and ``h:<identity hash>`` (makes an identical create return the existing
  subscription); both written in one transaction.

A subscription's row stays in the partition it was created in (deliveries and validations queued
with that key keep finding it). Every other partition its filters are matched in (each further
subject of a list, or the new ones after a PATCH) holds a small **ref row** (status ``ref``, the
row's key in ``home``) that matching resolves with a point read; the owners' ``i:`` row lists them
(``refs``). A row whose own partition its filters no longer name is stored with status ``away``
(the real one in ``awayStatus``), so matching never reads it there.

Fan-out does more for a resource only while it has subscriptions that need it: asking the contact
registry for main units (``includeSubunits``), and writing completion markers for ordered lanes
(``ordering: subject``). Each such subscription has a ref row in its resource's member partition
(``<resource>|u:`` or ``<resource>|o:``, kept like the other refs), and while a member partition is
not empty a **mark row** (status ``mark``, RowKey ``~u`` or ``~o``) sits in the resource's no-subject
partition, which every event reads anyway: fan-out learns both at no extra request. A mark is written
after its member ref, and deleted only under the ETag it had before its member partition was found
empty, so a concurrent create either is seen or keeps it; a mark left by a crash only costs that work.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableServiceClient
from cryptography.exceptions import InvalidTag

from shared.adapters.table_transactions import submit_transaction
from shared.adapters.tables import escape_key, put_if_unchanged
from shared.identity.secret_box import SecretBox
from shared.notifications.event_orders import NotificationSpec
from shared.subscriptions.model import Filters, Ordering, Secrets, Status, Subscription, identity_of, index_key
from shared.subscriptions.ports import IdenticalExists, Matched
from shared.subscriptions.targets import AuthenticationKind, Destination, EndpointAuthentication

log = logging.getLogger(__name__)

INDEX_TABLE = "subscriptions"
OWNERS_TABLE = "subscriptionowners"
# Sealed at rest: the signing secrets, and the custom header values a webhook's gateway asks for.
_SECRET_FIELDS = ("secret", "previousSecret", "upcomingSecret", "authHeaders")
REF = "ref"  # the status of a ref row: matching resolves it to the subscription's row
MARK = "mark"  # the status of a mark row: the resource has subscriptions of its kind (module docstring)
SUBUNITS, ORDERED = "u", "o"  # the kinds of member partition and mark
AWAY = "away"  # the status column of a row its own partition's events can never match


def _ref_keys(subscription: Subscription) -> list[str]:
    """The partitions besides its row's own that the subscription is matched in, and its member partitions."""
    matched = [key for key in subscription.filters.match_keys() if key != subscription.index_key]
    return matched + _member_keys(subscription)


def _member_keys(subscription: Subscription) -> list[str]:
    kinds = [SUBUNITS] if subscription.filters.include_subunits else []
    if subscription.ordering is Ordering.SUBJECT and subscription.notification is None:
        kinds.append(ORDERED)
    return [index_key(subscription.filters.resource, kind, "") for kind in kinds]


def _mark_of(member_key: str) -> tuple[str, str] | None:
    """The mark row (partition, row key) a member partition keeps; None for any other partition."""
    resource, _, kind = member_key.rpartition("|")
    if kind not in (f"{SUBUNITS}:", f"{ORDERED}:"):
        return None
    return escape_key(index_key(resource, "*", "")), f"~{kind[0]}"


def _single(value: str | tuple[str, ...] | None) -> str | None:
    return value if isinstance(value, str) else None


def _listed_values(value: str | tuple[str, ...] | None) -> str | None:
    # A list goes to a column of its own: a one-value column keeps reading as it was written before lists.
    return json.dumps(list(value)) if isinstance(value, tuple) else None


def _to_entity(subscription: Subscription) -> dict[str, Any]:
    filters = subscription.filters
    matched_here = subscription.index_key in filters.match_keys()
    return {
        "PartitionKey": escape_key(subscription.index_key),
        "RowKey": subscription.id,
        "consumer": subscription.consumer,
        "endpoint": subscription.endpoint,
        "resource": filters.resource,
        "source": filters.source,
        "subject": _single(filters.subject),
        "subjects": _listed_values(filters.subject),
        "alternativesubject": filters.alternativesubject,
        "type": _single(filters.type),
        "types": _listed_values(filters.type),
        "includeSubunits": filters.include_subunits or None,
        "homeKey": subscription.home_key,
        "status": subscription.status.value if matched_here else AWAY,
        "awayStatus": None if matched_here else subscription.status.value,
        # Pending after a change of target but still matched (``Subscription.revalidating``).
        "revalidating": subscription.revalidating or None,
        "created": subscription.created,
        "secret": subscription.secrets.current,
        "previousSecret": subscription.secrets.previous,
        "previousExpires": subscription.secrets.previous_expires,
        "upcomingSecret": subscription.secrets.upcoming,
        "failingSince": subscription.failing_since,
        "circuitOpenedAt": subscription.circuit_opened_at,
        "disabledReason": subscription.disabled_reason,
        "allowedRate": subscription.allowed_rate,
        # Notification subscriptions: the order fields as JSON; None for webhooks.
        "notification": subscription.notification.canonical() if subscription.notification else None,
        "ordering": subscription.ordering.value,
        # A broker instead of a webhook (``endpoint`` is its address), and the webhook's authentication:
        # its type and audience or header names here, the header values in sealed authHeaders.
        "destination": json.dumps(subscription.destination.public()) if subscription.destination else None,
        **_authentication_columns(subscription.authentication),
        "validationCodeHash": subscription.validation_code_hash,
        "validatedEndpoint": subscription.validated_endpoint,
    }


def _from_entity(entity: Mapping[str, Any]) -> Subscription:
    return Subscription(
        id=entity["RowKey"],
        consumer=entity["consumer"],
        endpoint=entity["endpoint"],
        filters=Filters(
            resource=entity["resource"],
            source=entity.get("source"),
            subject=_values(entity, "subjects", "subject"),
            alternativesubject=entity.get("alternativesubject"),
            type=_values(entity, "types", "type"),
            include_subunits=bool(entity.get("includeSubunits")),
        ),
        status=Status(entity.get("awayStatus") or entity["status"]),
        revalidating=bool(entity.get("revalidating")),
        home_key=entity.get("homeKey"),
        created=entity["created"],
        secrets=Secrets(
            entity["secret"], entity.get("previousSecret"), entity.get("previousExpires"), entity.get("upcomingSecret")
        ),
        failing_since=entity.get("failingSince"),
        circuit_opened_at=entity.get("circuitOpenedAt"),
        disabled_reason=entity.get("disabledReason"),
        allowed_rate=entity.get("allowedRate"),
        notification=_notification(entity.get("notification")),
        ordering=Ordering(entity.get("ordering") or Ordering.NONE),
        destination=Destination.from_public(json.loads(entity["destination"])) if entity.get("destination") else None,
        authentication=_authentication(entity.get("authentication"), entity.get("authHeaders")),
        validation_code_hash=entity.get("validationCodeHash"),
        validated_endpoint=entity.get("validatedEndpoint"),
    )


def _authentication_columns(authentication: EndpointAuthentication | None) -> dict[str, str | None]:
    if authentication is None:
        return {"authentication": None, "authHeaders": None}
    described: dict[str, object] = {"type": authentication.kind.value}
    if authentication.kind is AuthenticationKind.ENTRA_TOKEN:
        described["audience"] = authentication.audience
    else:
        described["headerNames"] = authentication.header_names
    values = json.dumps(dict(authentication.headers)) if authentication.headers else None
    return {"authentication": json.dumps(described), "authHeaders": values}


def _authentication(described: str | None, values: str | None) -> EndpointAuthentication | None:
    if not described:
        return None
    document = json.loads(described)
    kind = AuthenticationKind(document["type"])
    if kind is AuthenticationKind.ENTRA_TOKEN:
        return EndpointAuthentication(kind, audience=document["audience"])
    return EndpointAuthentication(kind, headers=tuple(json.loads(values or "{}").items()))


def _values(entity: Mapping[str, Any], listed: str, single: str) -> str | tuple[str, ...] | None:
    stored = entity.get(listed)
    return tuple(json.loads(stored)) if stored else entity.get(single)


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
                            "refs": json.dumps(_ref_keys(subscription)),
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
        # Refs before the row: a row found by an identical create is complete (a ref to no row matches nothing).
        await self._put_refs(subscription)
        with contextlib.suppress(ResourceExistsError):
            await self._index.create_entity(await self._sealed(subscription))
        return subscription, True

    async def _put_refs(self, subscription: Subscription) -> None:
        await asyncio.gather(
            *(
                self._index.upsert_entity(
                    {
                        "PartitionKey": escape_key(key),
                        "RowKey": subscription.id,
                        "status": REF,
                        "home": subscription.index_key,
                    },
                    mode=UpdateMode.REPLACE,
                )
                for key in _ref_keys(subscription)
            )
        )
        # After the member refs (see the module docstring).
        marks = [mark for key in _member_keys(subscription) if (mark := _mark_of(key)) is not None]
        await asyncio.gather(
            *(
                self._index.upsert_entity({"PartitionKey": pk, "RowKey": rk, "status": MARK}, mode=UpdateMode.REPLACE)
                for pk, rk in marks
            )
        )

    async def _delete_refs(self, keys: Iterable[str], subscription_id: str) -> None:
        async def one(key: str) -> None:
            with contextlib.suppress(ResourceNotFoundError):
                await self._index.delete_entity(escape_key(key), subscription_id)
            if (mark := _mark_of(key)) is not None:
                await self._release_mark(key, *mark)

        await asyncio.gather(*(one(key) for key in keys))

    async def _release_mark(self, member_key: str, partition: str, row: str) -> None:
        """Deletes the mark once its member partition is empty. Its ETag is read first: a create that
        adds a member after the emptiness check rewrites the mark, and the delete fails."""
        try:
            mark = await self._index.get_entity(partition, row)
        except ResourceNotFoundError:
            return
        async for _ in self._index.query_entities(
            "PartitionKey eq @pk", parameters={"pk": escape_key(member_key)}, results_per_page=1, select=["RowKey"]
        ):
            return
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            await self._index.delete_entity(
                partition, row, etag=mark.metadata["etag"], match_condition=MatchConditions.IfNotModified
            )

    async def get(self, consumer: str, subscription_id: str) -> Subscription | None:
        try:
            row = await self._owners.get_entity(escape_key(consumer), f"i:{subscription_id}")
        except ResourceNotFoundError:
            return None
        return await self.get_by_key(row["indexKey"], subscription_id)

    async def get_by_key(self, index_key: str, subscription_id: str) -> Subscription | None:
        try:
            entity = await self._index.get_entity(escape_key(index_key), subscription_id)
            if entity.get("status") == REF:  # deliveries carry the row's own key; a ref is followed all the same
                entity = await self._index.get_entity(escape_key(entity["home"]), subscription_id)
            return await self._opened(entity)
        except ResourceNotFoundError:
            return None

    async def id_range(self, index_key: str, first_id: str, last_id: str) -> list[Subscription]:
        # Other subscriptions' ref rows may share the partition; deliveries name the rows themselves.
        query = "PartitionKey eq @pk and RowKey ge @first and RowKey le @last and status ne 'ref' and status ne 'mark'"
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
        owner = escape_key(subscription.consumer)
        row: Mapping[str, Any] | None = None
        with contextlib.suppress(ResourceNotFoundError):
            row = await self._owners.get_entity(owner, f"i:{subscription.id}")
        refs = set(_ref_keys(subscription)) | set(json.loads(row.get("refs") or "[]") if row else ())
        # The refs, then the index entry: from here on no event matches the subscription. A delete that
        # dies half-way leaves the entry readable, so asking again finishes it.
        await self._delete_refs(refs - {subscription.index_key}, subscription.id)
        with contextlib.suppress(ResourceNotFoundError):
            await self._index.delete_entity(escape_key(subscription.index_key), subscription.id)
        if row is None:
            return
        pending = row.get("pendingIdentity")
        await submit_transaction(
            self._owners,
            [
                ("delete", {"PartitionKey": owner, "RowKey": row["listKey"]}),
                ("delete", {"PartitionKey": owner, "RowKey": f"h:{row['identity']}"}),
                *(
                    [("delete", {"PartitionKey": owner, "RowKey": f"h:{pending}"})]
                    if pending and pending != row["identity"]
                    else []
                ),
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
            if await put_if_unchanged(self._index, await self._sealed(changed), entity.metadata["etag"]) is None:
                continue  # changed meanwhile by another worker: apply the change to the new state (or it is gone)
            return changed
        raise RuntimeError(f"subscription {subscription_id} kept changing under concurrent updates")

    async def revise(
        self, index_key: str, subscription_id: str, mutate: Callable[[Subscription], Subscription | None]
    ) -> Subscription | None:
        """A change of filters, target or settings; the row stays where it is (see the module docstring).

        The steps, each safe to die after: (1) the owners' ``i:`` row lists every ref row about to be
        written, and a changed identity is reserved (``h:<new>`` created beside the old one, named in
        ``pendingIdentity``), which fails if another subscription holds it; (2) the new ref rows are
        written (a ref matches only what the row's filters match, so until step 3 they match nothing
        new); (3) the row is replaced under its ETag: the one step that changes what matches and is
        read; (4) ``_settle``: refs the filters no longer use are deleted, then the old identity row,
        and ``i:`` lists what is left. A change that died before (3) changed nothing but two owner
        rows (its reservation, which delete also removes); one that died after it is finished by the
        next revise of the subscription (a repeated PATCH, whether or not it changes anything)."""
        for _ in range(20):
            try:
                entity = await self._index.get_entity(escape_key(index_key), subscription_id)
            except ResourceNotFoundError:
                return None
            current = await self._opened(entity)
            owner = escape_key(current.consumer)
            try:
                row = await self._owners.get_entity(owner, f"i:{subscription_id}")
            except ResourceNotFoundError:
                return None
            changed = mutate(current)
            if changed is None:
                await self._settle(owner, current)
                return current
            changed = replace(changed, home_key=current.index_key)  # the row never moves
            identity = identity_of(changed)
            tracked = set(json.loads(row.get("refs") or "[]")) | set(_ref_keys(changed))
            reserve = identity not in (row["identity"], row.get("pendingIdentity"))
            operations: list[Any] = []
            if reserve:
                operations.append(("create", {"PartitionKey": owner, "RowKey": f"h:{identity}", "id": subscription_id}))
            kept = {k: v for k, v in row.items() if k not in ("refs", "pendingIdentity")}
            pending = identity if identity != row["identity"] else row.get("pendingIdentity")
            operations.append(
                (
                    "upsert",
                    {**kept, "refs": json.dumps(sorted(tracked)), "pendingIdentity": pending},
                    {"mode": UpdateMode.REPLACE},
                )
            )
            try:
                await submit_transaction(self._owners, operations)
            except TableTransactionError as error:
                if not reserve or getattr(error, "error_code", None) != "EntityAlreadyExists":
                    raise
                holder = (await self._owners.get_entity(owner, f"h:{identity}"))["id"]
                if holder != subscription_id:
                    raise IdenticalExists(holder) from error
                # Ours already (an earlier change that died): name it pending and go on.
                operations.pop(0)
                await submit_transaction(self._owners, operations)
            await self._put_refs(changed)
            if await put_if_unchanged(self._index, await self._sealed(changed), entity.metadata["etag"]) is None:
                continue  # changed meanwhile (a validation, a health update), or gone: read it again
            await self._settle(owner, changed)
            return changed
        raise RuntimeError(f"subscription {subscription_id} kept changing under concurrent updates")

    async def _settle(self, owner: str, subscription: Subscription) -> None:
        """After a change: the ref rows and the identity row follow the stored filters (see ``revise``)."""
        row = await self._owners.get_entity(owner, f"i:{subscription.id}")
        # Read again: a change made meanwhile by another request decides which refs are still needed.
        latest = await self.get_by_key(subscription.index_key, subscription.id) or subscription
        needed = set(_ref_keys(latest))
        tracked = set(json.loads(row.get("refs") or "[]"))
        identity, pending = identity_of(latest), row.get("pendingIdentity")
        if tracked == needed and not pending:
            return
        await self._delete_refs(tracked - needed - {latest.index_key}, latest.id)
        operations: list[Any] = []
        stored = row["identity"]
        if pending and pending != stored:
            # The reservation became the identity, or it was left by a change that never committed.
            gone = stored if pending == identity else pending
            operations.append(("delete", {"PartitionKey": owner, "RowKey": f"h:{gone}"}))
            stored = identity if pending == identity else stored
        kept = {k: v for k, v in row.items() if k not in ("refs", "pendingIdentity", "identity")}
        operations.append(
            ("upsert", {**kept, "identity": stored, "refs": json.dumps(sorted(needed))}, {"mode": UpdateMode.REPLACE})
        )
        await submit_transaction(self._owners, operations)

    async def matching(self, index_keys: Sequence[str]) -> Matched:
        """Rows are read with their partition; ref rows cost a point read of the row they name (once per
        call however many partitions name it), and count only when that row is matched: active, or
        pending after a change of target (``Subscription.matched``; its deliveries wait for the validation).
        Mark rows come with their no-subject partition (module docstring)."""
        refs: dict[tuple[str, str], Subscription | None] = {}
        marked: dict[str, set[str]] = {}

        async def partition(key: str) -> tuple[str, list[Subscription | tuple[str, str]]]:
            query = (
                "PartitionKey eq @pk and (status eq 'active' or status eq 'ref' or status eq 'mark'"
                " or (status eq 'pending' and revalidating eq true))"
            )
            found: list[Subscription | tuple[str, str]] = []
            async for entity in self._index.query_entities(query, parameters={"pk": escape_key(key)}):
                if entity["status"] == MARK:
                    marked.setdefault(key, set()).add(entity["RowKey"][1:])
                elif entity["status"] == REF:
                    refs[(entity["home"], entity["RowKey"])] = None
                    found.append((entity["home"], entity["RowKey"]))
                elif (subscription := await self._readable(entity)) is not None:
                    found.append(subscription)
            return key, found

        partitions = await asyncio.gather(*(partition(key) for key in set(index_keys)))

        async def resolve(home: str, subscription_id: str) -> None:
            # A ref whose row is gone (a delete that died half-way) matches nothing.
            with contextlib.suppress(ResourceNotFoundError):
                refs[(home, subscription_id)] = await self._readable(
                    await self._index.get_entity(escape_key(home), subscription_id)
                )

        await asyncio.gather(*(resolve(home, sid) for home, sid in list(refs)))
        result: dict[str, list[Subscription]] = {}
        for key, found in partitions:
            result[key] = []
            for item in found:
                subscription = refs.get(item) if isinstance(item, tuple) else item
                if subscription is not None and subscription.matched:
                    result[key].append(subscription)
        return Matched(
            result,
            subunits=frozenset(key for key, kinds in marked.items() if SUBUNITS in kinds),
            ordered=frozenset(key for key, kinds in marked.items() if ORDERED in kinds),
        )


def _created_of(list_key: str) -> datetime:
    return datetime.strptime(list_key.split(":")[1], "%Y%m%d%H%M%S%f").replace(tzinfo=UTC)
