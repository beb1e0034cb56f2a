"""Herald's lean ``$batch`` encoding against Azurite: every outcome the same as the library's own
``submit_transaction``, which each case also runs as the reference."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.data.tables import EdmType, EntityProperty, TableTransactionError, UpdateMode
from azure.data.tables.aio import TableClient

from shared.adapters.table_transactions import submit_transaction

Submit = Callable[[TableClient, list[Any]], Awaitable[list[dict[str, Any]]]]


async def _library(table: TableClient, operations: list[Any]) -> list[dict[str, Any]]:
    return await table.submit_transaction(operations)


@pytest.fixture(params=[submit_transaction, _library], ids=["herald", "library"])
def submit(request: pytest.FixtureRequest) -> Submit:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def table(azurite) -> AsyncIterator[TableClient]:
    client = TableClient.from_connection_string(azurite.connection_string, f"tx{uuid.uuid4().hex[:12]}")
    await client.create_table()
    yield client
    await client.delete_table()
    await client.close()


async def test_every_operation_kind_commits_and_returns_etags(table, submit):
    await table.create_entity({"PartitionKey": "p", "RowKey": "update", "n": 1})
    await table.create_entity({"PartitionKey": "p", "RowKey": "delete"})
    current = await table.get_entity("p", "update")
    stamp = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    results = await submit(
        table,
        [
            (
                "create",
                {
                    "PartitionKey": "p",
                    "RowKey": "new",
                    "text": "æøå \r\n--batch_x",  # non-ASCII and a would-be delimiter inside a value
                    "blob": b"\x00\x01binary",
                    "big": EntityProperty(2**40, EdmType.INT64),
                    "at": stamp,
                    "flag": True,
                },
            ),
            ("upsert", {"PartitionKey": "p", "RowKey": "upserted", "n": 2}, {"mode": UpdateMode.REPLACE}),
            (
                "update",
                {"PartitionKey": "p", "RowKey": "update", "n": 3},
                {"etag": current.metadata["etag"], "match_condition": _if_not_modified()},
            ),
            ("delete", {"PartitionKey": "p", "RowKey": "delete"}),
        ],
    )
    assert len(results) == 4
    created = await table.get_entity("p", "new")
    assert results[0]["etag"] == created.metadata["etag"]
    assert created["text"] == "æøå \r\n--batch_x" and created["blob"] == b"\x00\x01binary"
    assert created["big"].value == 2**40 and created["at"] == stamp and created["flag"] is True
    assert (await table.get_entity("p", "update"))["n"] == 3
    assert (await table.get_entity("p", "upserted"))["n"] == 2
    assert [e["RowKey"] async for e in table.query_entities("PartitionKey eq 'p'")] == ["new", "update", "upserted"]


async def test_a_conflict_names_the_failing_operation_and_commits_nothing(table, submit):
    await table.create_entity({"PartitionKey": "p", "RowKey": "k3"})
    with pytest.raises(TableTransactionError) as raised:
        await submit(table, [("create", {"PartitionKey": "p", "RowKey": f"k{i}"}) for i in range(6)])
    assert raised.value.index == 3
    assert str(raised.value.error_code) == "EntityAlreadyExists"
    assert [e["RowKey"] async for e in table.query_entities("PartitionKey eq 'p'")] == ["k3"]


async def test_a_stale_etag_fails_the_transaction(table, submit):
    await table.create_entity({"PartitionKey": "p", "RowKey": "counter", "s": 1})
    stale = (await table.get_entity("p", "counter")).metadata["etag"]
    await table.update_entity({"PartitionKey": "p", "RowKey": "counter", "s": 2})
    with pytest.raises(TableTransactionError) as raised:
        await submit(
            table,
            [
                ("create", {"PartitionKey": "p", "RowKey": "row"}),
                (
                    "update",
                    {"PartitionKey": "p", "RowKey": "counter", "s": 3},
                    {"etag": stale, "match_condition": _if_not_modified()},
                ),
            ],
        )
    assert raised.value.index == 1
    assert str(raised.value.error_code) in ("UpdateConditionNotSatisfied", "ConditionNotMet")
    assert (await table.get_entity("p", "counter"))["s"] == 2
    assert [e["RowKey"] async for e in table.query_entities("PartitionKey eq 'p'")] == ["counter"]


async def test_a_hundred_operations_of_a_few_kilobytes_each(table, submit):
    results = await submit(
        table, [("create", {"PartitionKey": "p", "RowKey": f"r{i:03d}", "d": b"x" * 4000}) for i in range(100)]
    )
    assert len(results) == 100 and all(r["etag"] for r in results)
    assert len([e async for e in table.query_entities("PartitionKey eq 'p'", select=["RowKey"])]) == 100


def _if_not_modified() -> Any:
    from azure.core import MatchConditions

    return MatchConditions.IfNotModified
