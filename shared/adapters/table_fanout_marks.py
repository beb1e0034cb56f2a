"""Fan-out marks on Azure Table Storage: the deliveries an inbound message already sent on.

They sit beside the log rows they are about, in the resource's partition of the event log's table
(``f<seq><chunk>``, see shared/adapters/table_event_log.py): the subscription members of one
outbound message sent for the inbound message that starts at row ``seq``. The last marker written
for a message also holds its last row (``t``): its fan-out is complete, which ordered lanes read
(shared/subscriptions/ordering.py). Retention removes them with the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient

from shared.adapters.table_event_log import EVENTS_TABLE, fanout_mark_key
from shared.adapters.tables import escape_key, int64, int_of


class TableFanoutMarks:
    def __init__(self, service: TableServiceClient) -> None:
        self._table: TableClient = service.get_table_client(EVENTS_TABLE)

    async def fanout_marks(self, resource: str, seq: int) -> set[str]:
        """Deliveries already handed to the outbound queue for the inbound message starting at ``seq``."""
        query = "PartitionKey eq @pk and RowKey ge @start and RowKey lt @end"
        parameters = {"pk": escape_key(resource), "start": fanout_mark_key(seq), "end": f"{fanout_mark_key(seq)}~"}
        sent: set[str] = set()
        async for entity in self._table.query_entities(query, parameters=parameters, select=["m"]):
            sent.update(filter(None, (entity.get("m") or "").split(",")))
        return sent

    async def add_fanout_mark(
        self, resource: str, seq: int, chunk: str, members: Sequence[str], *, through: int | None = None
    ) -> None:
        """``through``: on the message's last marker, its last row (its fan-out is complete)."""
        entity: dict[str, Any] = {
            "PartitionKey": escape_key(resource),
            "RowKey": fanout_mark_key(seq, chunk),
            "m": ",".join(members),
        }
        if through is not None:
            entity["t"] = int64(through)
        await self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    async def fanned_out(self, resource: str, first: int, before: int) -> list[tuple[int, int]]:
        """(first, last) rows of the inbound messages from ``first`` to before ``before`` whose fan-out
        completed, read from their last markers."""
        if first >= before:
            return []
        query = "PartitionKey eq @pk and RowKey ge @start and RowKey lt @end"
        parameters = {"pk": escape_key(resource), "start": fanout_mark_key(first), "end": fanout_mark_key(before)}
        done: list[tuple[int, int]] = []
        async for entity in self._table.query_entities(query, parameters=parameters, select=["RowKey", "t"]):
            if entity.get("t") is not None:
                done.append((int(entity["RowKey"][1:17]), int_of(entity["t"])))
        return done
