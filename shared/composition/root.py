"""Builds Herald from settings, once per process: every adapter is chosen here or in the feature
builders beside this module, and nowhere else."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from azure.data.tables.aio import TableServiceClient

from shared.adapters.table_backfills import TableBackfillStore
from shared.adapters.table_checkpoints import TableCheckpoints
from shared.adapters.table_dead_letters import TableDeadLetterStore
from shared.adapters.table_delivery_log import TableDeliveryLog
from shared.adapters.table_delivery_stats import TableDeliveryStats
from shared.adapters.table_event_log import TableEventLog
from shared.adapters.table_subscription_store import TableSubscriptionStore
from shared.adapters.tables import table_service
from shared.adapters.webhook_http import AiohttpWebhookClient
from shared.clock import Clock, SystemClock
from shared.composition.events import build_events
from shared.composition.identity import build_identity
from shared.composition.notifications import build_notifications
from shared.composition.push_targets import PushTargets, build_push_targets
from shared.composition.storage import bus_for
from shared.composition.subscriptions import build_subscriptions
from shared.config import Settings, settings
from shared.events.dispatch import Dispatcher, InboundStage
from shared.messaging import Bus
from shared.services import Services
from shared.subscriptions.ports import WebhookClient


@dataclass
class Stores:
    """What the use cases are built on. Hosts, benchmarks and tests look underneath through it;
    routes and triggers never do (they get ``Services``)."""

    tables: TableServiceClient
    bus: Bus
    webhooks: WebhookClient
    clock: Clock
    event_log: TableEventLog
    dispatcher: Dispatcher
    inbound: InboundStage
    checkpoints: TableCheckpoints
    subscription_store: TableSubscriptionStore
    delivery_log: TableDeliveryLog
    dead_letters: TableDeadLetterStore
    backfills: TableBackfillStore
    delivery_stats: TableDeliveryStats
    push_targets: PushTargets


@dataclass
class Herald:
    services: Services
    stores: Stores

    async def close(self) -> None:
        await self.services.outbound.close()  # its delivery statistics, while storage is still open
        await self.services.notifications.close()
        await self.stores.webhooks.close()
        await self.stores.push_targets.close()
        await self.stores.event_log.flush()  # its last rows reach the bus before the bus closes
        await self.stores.bus.close()
        await self.stores.tables.close()


def build_herald(
    config: Settings,
    *,
    clock: Clock | None = None,
    webhooks: WebhookClient | None = None,
    tables: TableServiceClient | None = None,
    bus: Bus | None = None,
    push_targets: PushTargets | None = None,
) -> Herald:
    """A host may pass its own clock, webhook client, table service, bus or push targets (tokens and
    broker destinations): benchmarks pass instrumented clients that count storage operations. The clock drives subscriptions (retries,
    health, delivery-log retention); the event log's timers and notifications keep the wall clock,
    and tests that move notification time build that feature with their own clock."""
    clock = clock or SystemClock()
    tables = tables or table_service(config)
    bus = bus or bus_for(config)
    webhooks = webhooks or AiohttpWebhookClient(allow_loopback=config.local)
    push_targets = push_targets or build_push_targets(config)
    identity = build_identity(config, tables)
    events = build_events(config, tables, bus, identity.authorizer)
    notifications = build_notifications(config, tables, bus, events.publisher, publishing=identity.authorizer)
    subscriptions = build_subscriptions(
        config,
        tables,
        bus,
        clock,
        webhooks,
        identity=identity,
        events=events,
        orders=notifications.orders,
        registry=notifications.registry,
        push_targets=push_targets,
    )
    services = Services(
        settings=config,
        tokens=identity.tokens,
        identities=identity.identities,
        access=identity.access,
        publish_limiter=identity.publish_limiter,
        publisher=events.publisher,
        reader=events.reader,
        eventgrid_ingest=events.ingest,
        event_upkeep=events.upkeep,
        subscriptions=subscriptions.service,
        validation=subscriptions.validation,
        fanout=subscriptions.fanout,
        outbound=subscriptions.outbound,
        notifier=subscriptions.notifier,
        backfills=subscriptions.backfills,
        backfill_pushes=subscriptions.backfill_pushes,
        ordered_lanes=subscriptions.ordered_lanes,
        notifications=notifications,
    )
    stores = Stores(
        tables=tables,
        bus=bus,
        webhooks=webhooks,
        clock=clock,
        event_log=events.log,
        dispatcher=events.dispatcher,
        inbound=events.inbound,
        checkpoints=events.checkpoints,
        subscription_store=subscriptions.store,
        delivery_log=subscriptions.delivery_log,
        dead_letters=subscriptions.dead_letters,
        backfills=subscriptions.backfill_store,
        delivery_stats=subscriptions.delivery_stats,
        push_targets=push_targets,
    )
    return Herald(services=services, stores=stores)


_herald: Herald | None = None
_loop: asyncio.AbstractEventLoop | None = None


def install(herald: Herald) -> None:
    """Use a Herald a host built itself (tests and benchmarks wire it to their own Azurite)."""
    global _herald, _loop
    _herald, _loop = herald, asyncio.get_running_loop()


def uninstall() -> None:
    """Forget the installed Herald without closing it (its builder closes it)."""
    global _herald, _loop
    _herald, _loop = None, None


async def close() -> None:
    """Closes the process's clients (the API's lifespan calls this at shutdown)."""
    if _herald is not None and _loop is asyncio.get_running_loop():
        await _herald.close()
    uninstall()


async def process_herald() -> Herald:
    """The process's Herald, built on first use; rebuilt if the event loop changed (clients bind to it)."""
    global _herald, _loop
    loop = asyncio.get_running_loop()
    if _herald is None or _loop is not loop:
        _herald, _loop = build_herald(settings()), loop
    return _herald


async def services() -> Services:
    """The process's use cases: what every trigger and the API ask for."""
    return (await process_herald()).services
