"""Dead letters on Table Storage (``deadletters``): per subscription, oldest first."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from azure.data.tables.aio import TableServiceClient

from shared.adapters.table_transactions import submit_transaction
from shared.adapters.tables import TRANSACTION_OPERATIONS, int64, int_of
from shared.subscriptions.ports import DeadLetter

DEAD_LETTERS_TABLE = "deadletters"


class TableDeadLetterStore:
    def __init__(self, service: TableServiceClient) -> None:
        self._table = service.get_table_client(DEAD_LETTERS_TABLE)

    @staticmethod
    def _key(letter: DeadLetter) -> str:
        return f"{letter.dead_at.strftime('%Y%m%d%H%M%S%f')}|{letter.delivery_id}"

    async def add(self, letters: Sequence[DeadLetter]) -> None:
        await self._in_transactions(
            letters,
            lambda letter: (
                "upsert",
                {
                    "PartitionKey": letter.subscription_id,
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
            ),
        )

    async def _in_transactions(
        self, letters: Iterable[DeadLetter], operation: Callable[[DeadLetter], tuple[str, dict[str, Any]]]
    ) -> None:
        """One transaction per subscription (its partition) and per ``TRANSACTION_OPERATIONS`` letters."""
        by_subscription: dict[str, list[DeadLetter]] = defaultdict(list)
        for letter in letters:
            by_subscription[letter.subscription_id].append(letter)
        for group in by_subscription.values():
            for start in range(0, len(group), TRANSACTION_OPERATIONS):
                await submit_transaction(
                    self._table, [operation(letter) for letter in group[start : start + TRANSACTION_OPERATIONS]]
                )

    @staticmethod
    def _from(entity: Mapping[str, Any]) -> DeadLetter:
        return DeadLetter(
            subscription_id=entity["PartitionKey"],
            delivery_id=entity["deliveryId"],
            resource=entity["resource"],
            seq=int_of(entity["seq"]),
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
        await self._in_transactions(
            letters, lambda letter: ("delete", {"PartitionKey": letter.subscription_id, "RowKey": self._key(letter)})
        )

    async def count(self, subscription_id: str, limit: int) -> int:
        """Keys only, a page at a time, stopping at ``limit``: a health check never reads a backlog whole."""
        counted = 0
        async for _ in self._table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": subscription_id}, select=["RowKey"], results_per_page=1000
        ):
            counted += 1
            if counted >= limit:
                break
        return counted
