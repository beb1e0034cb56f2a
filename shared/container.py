"""The composition root of ``shared``: builds adapters and services from settings, once per process."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from azure.data.tables.aio import TableServiceClient

from shared.adapters.table_checkpoints import STATE_TABLE, TableCheckpoints
from shared.adapters.table_event_log import EVENTS_TABLE, RESOURCES_TABLE, TableEventLog
from shared.adapters.tables import table_service
from shared.config import BusKind, Settings, settings
from shared.events.dispatch import Dispatcher, InboundStage, OutboxSweeper
from shared.events.publishing import EventPublisher
from shared.events.reading import EventReader
from shared.identity.tokens import JwksFileKeys, OpenIdKeys, SigningKeys, TokenValidator
from shared.messaging import Bus

TABLES: tuple[str, ...] = (EVENTS_TABLE, RESOURCES_TABLE, STATE_TABLE)


@dataclass
class Services:
    settings: Settings
    tables: TableServiceClient
    bus: Bus
    event_log: TableEventLog
    publisher: EventPublisher
    reader: EventReader
    dispatcher: Dispatcher
    outbox_sweeper: OutboxSweeper
    inbound: InboundStage
    checkpoints: TableCheckpoints
    tokens: TokenValidator

    async def close(self) -> None:
        await self.bus.close()
        await self.tables.close()


def build_bus(config: Settings) -> Bus:
    if config.bus is BusKind.SERVICE_BUS:
        from shared.adapters.service_bus import ServiceBusBus

        return ServiceBusBus.from_connection(config.service_bus)
    from shared.adapters.storage_queue_bus import StorageQueueBus

    return StorageQueueBus(config.storage_connection_string)


def build_signing_keys(config: Settings) -> SigningKeys:
    if config.auth_openid_metadata_url:
        return OpenIdKeys(config.auth_openid_metadata_url)
    if config.auth_jwks_path:
        return JwksFileKeys(config.auth_jwks_path)
    raise RuntimeError("set HERALD_AUTH_OPENID_METADATA_URL (Azure) or HERALD_AUTH_JWKS_PATH (local)")


def build_services(config: Settings) -> Services:
    from datetime import timedelta

    tables = table_service(config)
    bus = build_bus(config)
    event_log = TableEventLog(tables)
    dispatcher = Dispatcher(event_log, bus)
    event_log.set_commit_listener(dispatcher)
    return Services(
        settings=config,
        tables=tables,
        bus=bus,
        event_log=event_log,
        publisher=EventPublisher(event_log),
        reader=EventReader(event_log),
        dispatcher=dispatcher,
        outbox_sweeper=OutboxSweeper(event_log, dispatcher, grace=timedelta(seconds=config.outbox_grace_seconds)),
        inbound=InboundStage(event_log),
        checkpoints=TableCheckpoints(tables),
        tokens=TokenValidator(
            issuer=config.auth_issuer, audience=config.auth_audience, keys=build_signing_keys(config)
        ),
    )


_services: Services | None = None
_loop: asyncio.AbstractEventLoop | None = None


async def services() -> Services:
    """The process's services, built on first use; rebuilt if the event loop changed (clients bind to it)."""
    global _services, _loop
    loop = asyncio.get_running_loop()
    if _services is None or _loop is not loop:
        _services, _loop = build_services(settings()), loop
    return _services
