"""Fan-out marks on Azure Table Storage: the deliveries an inbound message already sent on.

They sit beside the log rows they are about, in the resource's partition of the event log's table
(``f<seq><chunk>``, see shared/adapters/table_event_log.py): the subscription members of one
outbound message sent for the inbound message that starts at row ``seq``. Retention removes them
with the rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient

from shared.adapters.table_event_log import EVENTS_TABLE, fanout_mark_key
from shared.adapters.tables import escape_key


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

    async def add_fanout_mark(self, resource: str, seq: int, chunk: str, members: Sequence[str]) -> None:
        entity = {"PartitionKey": escape_key(resource), "RowKey": fanout_mark_key(seq, chunk), "m": ",".join(members)}
        await self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)
