"""Dispatch: committed log rows travel to the inbound stage, and nothing committed is left behind.

Every append commits an outbox entry with its rows. Right after the commit the event log hands the
rows to the dispatcher (its commit listener), which sends the inbound message, and then clears the
entry; if the process dies in between, the outbox sweeper (a timer) finds the entry, has the
dispatcher send the message again and clears it. The inbound stage is idempotent, so a
row dispatched twice is harmless.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from shared.events.log import CommitListener, EventLog, LogRow
from shared.messaging import Bus, OutgoingMessage

log = logging.getLogger(__name__)

INBOUND_QUEUE = "events-inbound"


class InboundMessage(BaseModel):
    """Points the inbound stage at committed log rows of one resource."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resource: str = Field(min_length=1)
    seqs: list[int] = Field(min_length=1)


def inbound_message(resource: str, seqs: Sequence[int], trace: dict[str, str] | None = None) -> OutgoingMessage:
    body = InboundMessage(resource=resource, seqs=list(seqs)).model_dump_json().encode()
    # Deterministic id: Service Bus duplicate detection drops a re-sent pointer to the same rows.
    message_id = f"{hashlib.sha256(resource.encode()).hexdigest()[:16]}-{seqs[0]}"
    return OutgoingMessage(body=body, message_id=message_id, application_properties=trace or {})


class Dispatcher:
    """The event log's commit listener: hands committed rows to the inbound queue."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def dispatch(self, resource: str, seqs: Sequence[int]) -> None:
        from shared.telemetry import inject_trace_context

        await self._bus.send(INBOUND_QUEUE, [inbound_message(resource, seqs, inject_trace_context())])


class OutboxSweeper:
    """Re-dispatches outbox entries older than the grace period (their publisher died mid-way)."""

    def __init__(self, log: EventLog, dispatcher: CommitListener, *, grace: timedelta) -> None:
        self._log = log
        self._dispatcher = dispatcher
        self._grace = grace

    async def sweep(self, now: datetime, *, active_since: datetime) -> int:
        swept = 0
        for resource in await self._log.resources_active_since(active_since):
            for pending in await self._log.pending_dispatches(resource, committed_before=now - self._grace):
                log.warning(
                    "re-dispatching rows left in the outbox",
                    extra={
                        "resource": resource,
                        "seqs": list(pending.seqs),
                        "committed_at": pending.committed_at.isoformat(),
                    },
                )
                await self._dispatcher.dispatch(resource, pending.seqs)
                await self._log.clear_dispatch(resource, pending.outbox_id)
                swept += 1
        return swept


class InboundStage:
    """Loads the rows an inbound message points at; matching and fan-out build on the events it returns."""

    def __init__(self, log: EventLog) -> None:
        self._log = log

    async def load(self, message: InboundMessage) -> list[LogRow]:
        rows = await self._log.rows_by_seq(message.resource, message.seqs)
        if len(rows) < len(message.seqs):
            missing = sorted(set(message.seqs) - {row.seq for row in rows})
            log.warning(
                "inbound rows already removed by retention", extra={"resource": message.resource, "seqs": missing}
            )
        return rows
