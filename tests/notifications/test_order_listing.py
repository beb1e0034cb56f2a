"""GET /api/v1/notifications/orders: the caller's own orders, newest first, a page at a time; and each
notification's status history in the order's status."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from shared.adapters.table_orders import LISTING_PREFIX, ORDERS_TABLE, TableOrderStore
from shared.adapters.tables import escape_key
from shared.notifications.model import OrderStatus
from shared.notifications.ports import Conflict
from tests.notifications.conftest import post_order, status_of
from tests.support.identities import random_org

ORDERS = "/api/v1/notifications/orders"


def _next(response) -> str | None:
    link = response.headers.get("Link")
    if link is None:
        return None
    match = re.fullmatch(r'<([^>]+)>; rel="next"', link)
    assert match, link
    return match.group(1)


async def _listed(client, issuer, sender: str, size: int) -> tuple[list[dict[str, Any]], int]:
    """Every order the listing shows, following the Link header; and how many pages it took."""
    headers = issuer.headers("notifications.order", sub=sender)
    url: str | None = f"{ORDERS}?size={size}"
    orders: list[dict[str, Any]] = []
    pages = 0
    while url is not None:
        response = await client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["count"] == len(body["orders"]) <= size
        orders.extend(body["orders"])
        pages += 1
        url = _next(response)
    return orders, pages


async def test_orders_are_listed_newest_first_each_exactly_once_and_only_to_their_creator(
    client, issuer, harness, sender
):
    made = []
    for number in range(7):
        response = await post_order(
            client,
            issuer,
            sender,
            sendersReference=f"ref-{number}",
            recipients=[{"emailAddress": f"r{i}@example.com"} for i in range(number % 3 + 1)],
        )
        assert response.status_code == 202, response.text
        made.append(response.json()["orderId"])
        harness.clock.advance(timedelta(seconds=1))
    other = random_org()
    theirs = (await post_order(client, issuer, other)).json()["orderId"]

    orders, pages = await _listed(client, issuer, sender, size=3)
    assert [o["id"] for o in orders] == list(reversed(made))
    assert pages == 3
    newest = orders[0]
    assert newest["sendersReference"] == "ref-6"
    assert newest["recipientCount"] == 1  # 6 % 3 + 1
    assert orders[1]["recipientCount"] == 3
    assert newest["notificationChannel"] == "Email"
    assert newest["processingStatus"]["status"] == "Registered"
    assert newest["created"] > orders[1]["created"]
    # A summary, never the recipients or the templates.
    assert not {"recipients", "emailTemplate", "smsTemplate", "idempotencyId"} & set(newest)

    # Another caller sees only its own, and gets 404 for this sender's order.
    assert [o["id"] for o in (await _listed(client, issuer, other, size=50))[0]] == [theirs]
    response = await client.get(f"{ORDERS}/{made[0]}", headers=issuer.headers("notifications.order", sub=other))
    assert response.status_code == 404


async def test_a_listing_reads_one_page_of_listing_rows_and_follows_the_order_status(
    client, issuer, harness, sender, stores
):
    ids = [(await post_order(client, issuer, sender)).json()["orderId"] for _ in range(2)]
    cancelled = await client.post(
        f"{ORDERS}/{ids[1]}/cancel", headers=issuer.headers("notifications.order", sub=sender)
    )
    assert cancelled.status_code == 200
    orders, _ = await _listed(client, issuer, sender, size=50)
    assert {o["id"]: o["processingStatus"]["status"] for o in orders} == {ids[0]: "Registered", ids[1]: "Cancelled"}
    # One listing row per order, written with it and replaced (not added to) by its update.
    table = stores.tables.get_table_client(ORDERS_TABLE)
    rows = [
        row["RowKey"]
        async for row in table.query_entities(
            "PartitionKey eq @pk and RowKey ge 't' and RowKey lt 'u'", parameters={"pk": escape_key(sender)}
        )
    ]
    assert len(rows) == 2 and all(row.startswith(LISTING_PREFIX) for row in rows)


async def test_bad_cursors_and_sizes_are_problems(client, issuer, harness, sender):
    headers = issuer.headers("notifications.order", sub=sender)
    for query in ("size=0", "size=101", "size=x", "after=not-a-cursor", "after=bzEudDAwfG5vcGU", "after="):
        response = await client.get(f"{ORDERS}?{query}", headers=headers)
        assert response.status_code == 400, (query, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    response = await client.get(ORDERS, headers=issuer.headers("events.read", sub=sender))
    assert response.status_code == 403


async def test_each_notification_shows_its_status_history_to_the_delivery_report(client, issuer, harness, sender):
    response = await post_order(
        client,
        issuer,
        sender,
        recipients=[{"emailAddress": "kari@example.com"}, {"emailAddress": "bounce@example.com"}],
    )
    order_id = response.json()["orderId"]
    await harness.run(order_id)
    await harness.deliver_reports()
    document = await status_of(client, issuer, sender, order_id)
    paths = {
        n["recipient"]["emailAddress"]: [step["status"] for step in n["history"]] for n in document["notifications"]
    }
    assert paths == {
        "kari@example.com": ["New", "Sending", "Succeeded", "Delivered"],
        "bounce@example.com": ["New", "Sending", "Succeeded", "Failed_Bounced"],
    }
    for notification in document["notifications"]:
        times = [step["at"] for step in notification["history"]]
        assert times == sorted(times)
        assert notification["history"][-1]["status"] == notification["sendStatus"]["status"]


async def _listing_rows(stores, sender: str, order_id: str) -> list[Any]:
    table = stores.tables.get_table_client(ORDERS_TABLE)
    return [
        row
        async for row in table.query_entities(
            "PartitionKey eq @pk and RowKey ge 't' and RowKey lt 'u' and orderId eq @id",
            parameters={"pk": escape_key(sender), "id": order_id},
        )
    ]


async def test_a_stale_update_is_a_conflict_and_leaves_the_listing_row_as_it_was(
    client, issuer, harness, sender, stores
):
    order_id = (await post_order(client, issuer, sender)).json()["orderId"]
    orders = TableOrderStore(stores.tables)
    read = await orders.get(sender, order_id)
    assert read is not None
    await orders.update(replace(read, status=OrderStatus.PROCESSING))  # another writer got there first
    (before,) = await _listing_rows(stores, sender, order_id)
    assert before["status"] == "Processing"

    with pytest.raises(Conflict):
        await orders.update(replace(read, status=OrderStatus.CANCELLED))  # the version it read is stale
    (after,) = await _listing_rows(stores, sender, order_id)
    assert dict(after) == dict(before) and after.metadata["etag"] == before.metadata["etag"]


async def test_an_update_of_a_missing_order_writes_no_listing_row(client, issuer, harness, sender, stores):
    order_id = (await post_order(client, issuer, sender)).json()["orderId"]
    orders = TableOrderStore(stores.tables)
    read = await orders.get(sender, order_id)
    assert read is not None
    missing = replace(read, id=str(uuid.uuid4()))  # a version, but no such order
    with pytest.raises(Conflict):
        await orders.update(missing)
    assert await _listing_rows(stores, sender, missing.id) == []


def test_cursors_share_one_shape_and_each_list_refuses_anothers():
    """Events, orders and policies seal their cursors alike (``shared/cursors.py``), each with its own
    version tag: a cursor from one list is no cursor to another."""
    from shared.cursors import seal, unseal
    from shared.events.cursor import CursorInvalid as EventCursorInvalid
    from shared.events.cursor import decode_cursor as decode_event_cursor
    from shared.events.cursor import encode_cursor as encode_event_cursor
    from shared.events.log import Position
    from shared.notifications.listing import CursorInvalid, decode_cursor, encode_cursor

    key = f"t{'0' * 20}|{uuid.uuid4()}"
    order_cursor = encode_cursor(key)
    assert decode_cursor(order_cursor) == key and unseal("o1", order_cursor) == key
    event_cursor = encode_event_cursor("urn:x:r", Position(3, 1))
    assert decode_event_cursor(event_cursor, "urn:x:r") == Position(3, 1)
    for foreign in (event_cursor, seal("p1", key), seal("o1", ""), "bm90IGEgY3Vyc29y", "%%%"):
        with pytest.raises(CursorInvalid):
            decode_cursor(foreign)
    for foreign in (order_cursor, seal("p1", "3.1.x"), seal("1", "3.1"), "%%%"):
        with pytest.raises(EventCursorInvalid):
            decode_event_cursor(foreign, "urn:x:r")
    assert unseal("p1", order_cursor) is None and unseal("p1", seal("p1", "urn:x:é")) == "urn:x:é"
