"""The composition root of ``shared``: builds adapters and services from settings, once per process."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from azure.data.tables.aio import TableServiceClient

from shared.adapters.table_authorization import (
    POLICIES_TABLE,
    ROLES_TABLE,
    TablePolicyStore,
    TableRoleStore,
    TableVersionCounter,
)
from shared.adapters.table_checkpoints import STATE_TABLE, TableCheckpoints
from shared.adapters.table_contacts import CONTACTS_TABLE
from shared.adapters.table_event_log import EVENTS_TABLE, RESOURCES_TABLE, TableEventLog
from shared.adapters.table_notifications import TABLES as NOTIFICATION_TABLES
from shared.adapters.table_order_governance import TABLES as ORDER_GOVERNANCE_TABLES
from shared.adapters.table_publish_limits import PUBLISH_LIMITS_TABLE, TablePublishBuckets
from shared.adapters.table_subscriptions import (
    DEAD_LETTERS_TABLE,
    INDEX_TABLE,
    OWNERS_TABLE,
    TableDeadLetterStore,
    TableDeliveryLog,
    TableSubscriptionStore,
)
from shared.adapters.tables import table_service
from shared.adapters.webhook_http import AiohttpWebhookClient
from shared.config import BusKind, Settings, settings
from shared.events.dispatch import Dispatcher, InboundStage, OutboxSweeper
from shared.events.publishing import EventPublisher
from shared.events.reading import EventReader
from shared.identity.authorization import Access, Authorizer, DecisionPoint, LocalDecisionPoint
from shared.identity.rate_limit import LeasedTokenBuckets
from shared.identity.secret_box import EnvelopeSecretBox, LocalSecretBox, SecretBox
from shared.identity.tokens import JwksFileKeys, OpenIdKeys, SigningKeys, TokenValidator
from shared.messaging import Bus
from shared.notifications.service import Notifications
from shared.notifications.wiring import build_notifications
from shared.subscriptions.delivery import RetryPolicy
from shared.subscriptions.endpoint_guard import EndpointGuard
from shared.subscriptions.endpoint_policy import EndpointPolicy
from shared.subscriptions.fanout import Fanout
from shared.subscriptions.outbound import OutboundWorker
from shared.subscriptions.ports import Clock, SystemClock, WebhookClient
from shared.subscriptions.service import SubscriptionService
from shared.subscriptions.state import SubscriptionEvents, SubscriptionHealth

TABLES: tuple[str, ...] = (
    EVENTS_TABLE,
    RESOURCES_TABLE,
    STATE_TABLE,
    INDEX_TABLE,
    OWNERS_TABLE,
    DEAD_LETTERS_TABLE,
    POLICIES_TABLE,
    ROLES_TABLE,
)
TABLES += (*NOTIFICATION_TABLES, CONTACTS_TABLE)  # notifications (shared/adapters/table_notifications.py)
TABLES += ORDER_GOVERNANCE_TABLES  # sender grants and notification counters
TABLES += (PUBLISH_LIMITS_TABLE,)  # publishers' rate limits, shared by every instance


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
    clock: Clock
    webhooks: WebhookClient
    subscription_store: TableSubscriptionStore
    subscriptions: SubscriptionService
    fanout: Fanout
    outbound: OutboundWorker
    delivery_log: TableDeliveryLog
    dead_letters: TableDeadLetterStore
    access: Access
    publish_limiter: LeasedTokenBuckets
    notifications: Notifications

    async def close(self) -> None:
        await self.notifications.close()
        await self.webhooks.close()
        await self.bus.close()
        await self.tables.close()


def build_bus(config: Settings) -> Bus:
    if config.bus is BusKind.SERVICE_BUS:
        from shared.adapters.service_bus import ServiceBusBus

        return ServiceBusBus.from_connection(config.service_bus)
    from shared.adapters.storage_queue_bus import StorageQueueBus

    return StorageQueueBus(config.storage_connection_string)


def build_secret_box(config: Settings) -> SecretBox:
    """A Key Vault key wraps the data keys in Azure; locally a key file seals them."""
    if config.secret_key_uri:
        from shared.adapters.key_vault import KeyVaultKeyWrapper

        identity = config.storage  # the app's managed identity, as its storage connection names it
        return EnvelopeSecretBox(KeyVaultKeyWrapper.from_key_uri(config.secret_key_uri, identity))
    if config.secret_key_path:
        return LocalSecretBox.from_file(config.secret_key_path)
    raise RuntimeError("set HERALD_SECRET_KEY_URI (a Key Vault key, Azure) or HERALD_SECRET_KEY_PATH (local)")


def build_decision_point(config: Settings, policies: TablePolicyStore, roles: TableRoleStore) -> DecisionPoint:
    """Herald's own policies and roles, or an external policy decision point (HERALD_AUTHORIZATION=pdp)."""
    if config.authorization == "pdp":
        from shared.adapters.http_decision_point import HttpDecisionPoint

        return HttpDecisionPoint.from_settings(config)
    if config.authorization != "local":
        raise RuntimeError("HERALD_AUTHORIZATION is local or pdp")
    return LocalDecisionPoint(policies, roles)


def build_signing_keys(config: Settings) -> SigningKeys:
    if config.auth_openid_metadata_url:
        return OpenIdKeys(config.auth_openid_metadata_url)
    if config.auth_jwks_path:
        return JwksFileKeys(config.auth_jwks_path)
    raise RuntimeError("set HERALD_AUTH_OPENID_METADATA_URL (Azure) or HERALD_AUTH_JWKS_PATH (local)")


def build_services(
    config: Settings,
    *,
    clock: Clock | None = None,
    webhooks: WebhookClient | None = None,
    tables: TableServiceClient | None = None,
    bus: Bus | None = None,
) -> Services:
    """Builds every service from settings; a host may pass its own clock, webhook client, table
    service or bus (benchmarks pass instrumented clients that count storage operations)."""
    from datetime import timedelta
    from urllib.parse import urlsplit

    from shared.telemetry import inject_trace_context

    clock = clock or SystemClock()
    tables = tables or table_service(config)
    bus = bus or build_bus(config)
    event_log = TableEventLog(tables)
    dispatcher = Dispatcher(event_log, bus)
    event_log.set_commit_listener(dispatcher)
    publisher = EventPublisher(event_log)
    webhooks = webhooks or AiohttpWebhookClient(allow_loopback=config.local)
    policies, roles = TablePolicyStore(tables), TableRoleStore(tables)
    authorizer = Authorizer(build_decision_point(config, policies, roles), TableVersionCounter(tables))
    store = TableSubscriptionStore(tables, box=build_secret_box(config))
    dead_letters = TableDeadLetterStore(tables)
    delivery_log = TableDeliveryLog(tables, retention=timedelta(days=config.delivery_log_days))
    policy = RetryPolicy(config.retry_schedule_seconds, timedelta(hours=config.retry_horizon_hours))
    health = SubscriptionHealth(
        store, SubscriptionEvents(publisher, clock), clock, disable_after=timedelta(days=config.disable_after_days)
    )
    origin = urlsplit(config.public_base_url).hostname or "herald"
    subscriptions = SubscriptionService(
        store=store,
        dead_letters=dead_letters,
        bus=bus,
        client=webhooks,
        health=health,
        clock=clock,
        policy=policy,
        origin=origin,
        public_base_url=config.public_base_url,
        timeout_seconds=config.webhook_timeout_seconds,
        authorizer=authorizer,
        endpoints=EndpointPolicy(local_mode=config.local),
    )
    outbound = OutboundWorker(
        store=store,
        event_log=event_log,
        delivery_log=delivery_log,
        dead_letters=dead_letters,
        bus=bus,
        client=webhooks,
        guard=EndpointGuard(),
        health=health,
        clock=clock,
        policy=policy,
        timeout_seconds=config.webhook_timeout_seconds,
        origin=origin,
        authorizer=authorizer,
        trace=inject_trace_context,
    )
    return Services(
        settings=config,
        tables=tables,
        bus=bus,
        event_log=event_log,
        publisher=publisher,
        reader=EventReader(event_log),
        dispatcher=dispatcher,
        outbox_sweeper=OutboxSweeper(event_log, dispatcher, grace=timedelta(seconds=config.outbox_grace_seconds)),
        inbound=InboundStage(event_log),
        checkpoints=TableCheckpoints(tables),
        tokens=TokenValidator(
            issuer=config.auth_issuer, audience=config.auth_audience, keys=build_signing_keys(config)
        ),
        clock=clock,
        webhooks=webhooks,
        subscription_store=store,
        subscriptions=subscriptions,
        fanout=Fanout(store, event_log, bus),
        outbound=outbound,
        delivery_log=delivery_log,
        dead_letters=dead_letters,
        notifications=build_notifications(config, tables, bus, publisher, publishing=authorizer),
        access=Access(policies=policies, roles=roles, authorizer=authorizer),
        publish_limiter=LeasedTokenBuckets(
            TablePublishBuckets(tables), rate_per_second=config.publish_rate_per_second, burst=config.publish_burst
        ),
    )


_services: Services | None = None
_loop: asyncio.AbstractEventLoop | None = None


def install_services(built: Services) -> None:
    """Use services a host built itself (tests and benchmarks wire them to their own Azurite)."""
    global _services, _loop
    _services, _loop = built, asyncio.get_running_loop()


async def close_services() -> None:
    """Closes the process's clients (the API's lifespan calls this at shutdown)."""
    global _services, _loop
    if _services is not None and _loop is asyncio.get_running_loop():
        await _services.close()
    _services, _loop = None, None


async def services() -> Services:
    """The process's services, built on first use; rebuilt if the event loop changed (clients bind to it)."""
    global _services, _loop
    loop = asyncio.get_running_loop()
    if _services is None or _loop is not loop:
        _services, _loop = build_services(settings()), loop
    return _services
