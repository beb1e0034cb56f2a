"""Builds the event log and what runs around it: publishing, reading, dispatch to the inbound queue,
the outbox sweep, retention and ingestion from Event Grid."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from azure.data.tables.aio import TableServiceClient

from shared.adapters.table_checkpoints import TableCheckpoints
from shared.adapters.table_event_log import TableEventLog
from shared.clock import SystemClock
from shared.config import Settings
from shared.events.dispatch import Dispatcher, InboundStage, OutboxSweeper
from shared.events.ingest import EventGridIngest
from shared.events.maintenance import EventLogUpkeep
from shared.events.publishing import EventPublisher
from shared.events.reading import EventReader
from shared.identity.authorization import Authorizer
from shared.messaging import Bus


@dataclass
class Events:
    log: TableEventLog
    dispatcher: Dispatcher
    checkpoints: TableCheckpoints
    inbound: InboundStage
    publisher: EventPublisher
    reader: EventReader
    upkeep: EventLogUpkeep
    ingest: EventGridIngest


def build_events(config: Settings, tables: TableServiceClient, bus: Bus, authorizer: Authorizer) -> Events:
    # One way: the log hands each commit to the dispatcher, which only sends; the log clears its outbox.
    dispatcher = Dispatcher(bus)
    log = TableEventLog(tables, listener=dispatcher)
    publisher = EventPublisher(log)
    checkpoints = TableCheckpoints(tables)
    sweeper = OutboxSweeper(log, dispatcher, grace=timedelta(seconds=config.outbox_grace_seconds))
    # Stamps and sweeps go by the wall clock, whatever clock a test hands the other services.
    wall_clock = SystemClock()
    return Events(
        log=log,
        dispatcher=dispatcher,
        checkpoints=checkpoints,
        inbound=InboundStage(log),
        publisher=publisher,
        reader=EventReader(log),
        upkeep=EventLogUpkeep(
            log, sweeper, checkpoints, wall_clock, retention=timedelta(days=config.event_retention_days)
        ),
        ingest=EventGridIngest(publisher, authorizer, config.eventgrid_publisher, wall_clock),
    )
