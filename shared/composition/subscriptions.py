"""Builds subscriptions: the store, matching and fan-out, the webhook worker with its guard and retry
policy, the validation handshake, and the notify stage that turns deliveries into orders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from azure.data.tables.aio import TableServiceClient

from shared.adapters.table_dead_letters import TableDeadLetterStore
from shared.adapters.table_delivery_log import TableDeliveryLog
from shared.adapters.table_fanout_marks import TableFanoutMarks
from shared.adapters.table_subscription_store import TableSubscriptionStore
from shared.clock import Clock
from shared.composition.events import Events
from shared.composition.identity import Identity
from shared.config import Settings
from shared.endpoint_policy import EndpointPolicy
from shared.messaging import Bus
from shared.notifications.orders import OrderService
from shared.subscriptions.delivery import RetryPolicy
from shared.subscriptions.endpoint_guard import EndpointGuard
from shared.subscriptions.fanout import Fanout
from shared.subscriptions.health import SubscriptionEvents, SubscriptionHealth
from shared.subscriptions.notification_target import EventNotifier
from shared.subscriptions.outbound import OutboundWorker
from shared.subscriptions.ports import WebhookClient
from shared.subscriptions.service import SubscriptionService
from shared.telemetry import inject_trace_context


@dataclass
class Subscriptions:
    store: TableSubscriptionStore
    delivery_log: TableDeliveryLog
    dead_letters: TableDeadLetterStore
    service: SubscriptionService
    fanout: Fanout
    outbound: OutboundWorker
    notifier: EventNotifier


def build_subscriptions(
    config: Settings,
    tables: TableServiceClient,
    bus: Bus,
    clock: Clock,
    webhooks: WebhookClient,
    *,
    identity: Identity,
    events: Events,
    orders: OrderService,
) -> Subscriptions:
    store = TableSubscriptionStore(tables, box=identity.secret_box)
    dead_letters = TableDeadLetterStore(tables)
    delivery_log = TableDeliveryLog(tables, retention=timedelta(days=config.delivery_log_days))
    policy = RetryPolicy(config.retry_schedule_seconds, timedelta(hours=config.retry_horizon_hours))
    health = SubscriptionHealth(
        store,
        SubscriptionEvents(events.publisher, clock),
        clock,
        disable_after=timedelta(days=config.disable_after_days),
    )
    origin = urlsplit(config.public_base_url).hostname or "herald"
    return Subscriptions(
        store=store,
        delivery_log=delivery_log,
        dead_letters=dead_letters,
        service=SubscriptionService(
            store=store,
            dead_letters=dead_letters,
            delivery_log=delivery_log,
            bus=bus,
            client=webhooks,
            health=health,
            clock=clock,
            policy=policy,
            origin=origin,
            public_base_url=config.public_base_url,
            timeout_seconds=config.webhook_timeout_seconds,
            authorizer=identity.authorizer,
            endpoints=EndpointPolicy(local_mode=config.local),
        ),
        fanout=Fanout(store, TableFanoutMarks(tables), bus, rows=events.inbound),
        outbound=OutboundWorker(
            store=store,
            event_log=events.log,
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
            authorizer=identity.authorizer,
            trace=inject_trace_context,
        ),
        notifier=EventNotifier(
            store=store, event_log=events.log, orders=orders, delivery_log=delivery_log, clock=clock, bus=bus
        ),
    )
