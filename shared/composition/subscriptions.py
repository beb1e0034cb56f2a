"""Builds subscriptions: the store, matching and fan-out, the webhook worker with its guard and retry
policy, the validation handshake, and the notify stage that turns deliveries into orders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from azure.data.tables.aio import TableServiceClient

from shared.adapters.table_backfills import TableBackfillStore
from shared.adapters.table_dead_letters import TableDeadLetterStore
from shared.adapters.table_delivery_log import TableDeliveryLog
from shared.adapters.table_delivery_stats import TableDeliveryStats
from shared.adapters.table_fanout_marks import TableFanoutMarks
from shared.adapters.table_ordered_lanes import TableLaneStore
from shared.adapters.table_publish_limits import TablePublishBuckets
from shared.adapters.table_subscription_store import TableSubscriptionStore
from shared.clock import Clock
from shared.composition.events import Events
from shared.composition.identity import Identity
from shared.composition.push_targets import PushTargets, herald_own
from shared.config import Settings
from shared.endpoint_policy import EndpointPolicy
from shared.identity.rate_limit import LeasedTokenBuckets
from shared.messaging import Bus
from shared.notifications.orders import OrderService
from shared.notifications.ports import ContactRegistry
from shared.subscriptions.backfill import BACKFILL_PUSH_QUEUE, BackfillProgress, BackfillPushes, Backfills
from shared.subscriptions.delivery import RetryPolicy
from shared.subscriptions.endpoint_guard import EndpointGuard
from shared.subscriptions.fanout import Fanout
from shared.subscriptions.health import SubscriptionEvents, SubscriptionHealth
from shared.subscriptions.messages import RETRY_QUEUE
from shared.subscriptions.notification_target import EventNotifier
from shared.subscriptions.ordering import OrderedLanes
from shared.subscriptions.outbound import OutboundWorker
from shared.subscriptions.ports import SettleListener, WebhookClient
from shared.subscriptions.push import Pusher
from shared.subscriptions.service import TEST_PUSH_BURST, TEST_PUSHES_PER_SECOND, SubscriptionService
from shared.subscriptions.stats import HISTORY, DeliveryStats
from shared.subscriptions.subunits import MainUnits
from shared.subscriptions.validation import SubscriptionValidation
from shared.telemetry import inject_trace_context


@dataclass
class Subscriptions:
    store: TableSubscriptionStore
    delivery_log: TableDeliveryLog
    delivery_stats: TableDeliveryStats
    dead_letters: TableDeadLetterStore
    service: SubscriptionService
    validation: SubscriptionValidation
    fanout: Fanout
    outbound: OutboundWorker
    notifier: EventNotifier
    backfill_store: TableBackfillStore
    backfills: Backfills
    backfill_pushes: BackfillPushes
    ordered_lanes: OrderedLanes


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
    registry: ContactRegistry | None = None,
    push_targets: PushTargets | None = None,
) -> Subscriptions:
    """``registry``: the contact registry, where fan-out finds a subunit's main unit (``includeSubunits``).
    ``push_targets``: gateway tokens and broker destinations (none: webhooks without them only)."""
    targets = push_targets or PushTargets()
    store = TableSubscriptionStore(tables, box=identity.secret_box)
    dead_letters = TableDeadLetterStore(tables)
    delivery_log = TableDeliveryLog(tables, retention=timedelta(days=config.delivery_log_days))
    # The health read's ``last14Days`` needs 14 days of figures, however briefly attempts are kept.
    delivery_stats = TableDeliveryStats(tables, retention=max(HISTORY, timedelta(days=config.delivery_log_days)))
    # One process's counts, whichever of its workers settles: each process writes its own rows.
    stats = DeliveryStats(delivery_stats, clock)
    policy = RetryPolicy(config.retry_schedule_seconds, timedelta(hours=config.retry_horizon_hours))
    health = SubscriptionHealth(
        store,
        SubscriptionEvents(events.publisher, clock),
        clock,
        disable_after=timedelta(days=config.disable_after_days),
    )
    origin = urlsplit(config.public_base_url).hostname or "herald"
    # One guard for live and backfilled pushes: an endpoint's limits hold for both together.
    guard = EndpointGuard(open_seconds=config.circuit_open_seconds)

    marks = TableFanoutMarks(tables)
    # ``ordering: subject`` subscriptions: fan-out fills the lanes, the live worker's settles move them on.
    lanes = OrderedLanes(
        lanes=TableLaneStore(tables),
        progress=marks,
        event_log=events.log,
        subscriptions=store,
        bus=bus,
        clock=clock,
    )

    def outbound_worker(
        retry_queue: str = RETRY_QUEUE,
        listener: SettleListener | None = None,
        *,
        in_order: bool = False,
        ordered: OrderedLanes | None = None,
    ) -> OutboundWorker:
        return OutboundWorker(
            store=store,
            event_log=events.log,
            delivery_log=delivery_log,
            dead_letters=dead_letters,
            bus=bus,
            client=webhooks,
            guard=guard,
            health=health,
            clock=clock,
            policy=policy,
            timeout_seconds=config.webhook_timeout_seconds,
            origin=origin,
            authorizer=identity.authorizer,
            trace=inject_trace_context,
            destinations=targets.destinations,
            tokens=targets.tokens,
            retry_queue=retry_queue,
            listener=listener,
            in_order=in_order,
            stats=stats,
            lanes=ordered,
        )

    # Test pushes and validation events: pushed as the outbound worker pushes, outside its guard.
    pusher = Pusher(
        client=webhooks,
        clock=clock,
        policy=policy,
        origin=origin,
        timeout_seconds=config.webhook_timeout_seconds,
        destinations=targets.destinations,
        tokens=targets.tokens,
    )
    backfill_store = TableBackfillStore(
        # Not before its pushes' retries have ended: a push of an expired backfill would be dropped.
        tables,
        retention=max(timedelta(days=config.delivery_log_days), policy.horizon + timedelta(days=1)),
    )
    progress = BackfillProgress(backfill_store, bus)
    # Fan-out and backfill match subunits' events alike, from one cache of the registry's answers.
    main_units = MainUnits(registry) if registry is not None else None
    return Subscriptions(
        store=store,
        delivery_log=delivery_log,
        delivery_stats=delivery_stats,
        dead_letters=dead_letters,
        service=SubscriptionService(
            store=store,
            dead_letters=dead_letters,
            delivery_log=delivery_log,
            bus=bus,
            pusher=pusher,
            health=health,
            clock=clock,
            policy=policy,
            public_base_url=config.public_base_url,
            authorizer=identity.authorizer,
            endpoints=EndpointPolicy(local_mode=config.local),
            delivery_stats=delivery_stats,
            # Test pushes share the publishers' bucket table, under keys no identity can have.
            test_pushes=LeasedTokenBuckets(
                TablePublishBuckets(tables), rate_per_second=TEST_PUSHES_PER_SECOND, burst=TEST_PUSH_BURST
            ),
            own=herald_own(config),
            backfills=backfill_store,
        ),
        validation=SubscriptionValidation(
            store=store,
            bus=bus,
            pusher=pusher,
            health=health,
            clock=clock,
            origin=origin,
            public_base_url=config.public_base_url,
            code_patience=policy.horizon,
        ),
        fanout=Fanout(
            store,
            marks,
            bus,
            rows=events.inbound,
            main_units=main_units,
            lanes=lanes,
        ),
        outbound=outbound_worker(ordered=lanes),
        notifier=EventNotifier(
            store=store, event_log=events.log, orders=orders, delivery_log=delivery_log, clock=clock, bus=bus
        ),
        backfill_store=backfill_store,
        backfills=Backfills(
            store=backfill_store,
            subscriptions=store,
            reader=events.reader,
            event_log=events.log,
            authorizer=identity.authorizer,
            bus=bus,
            clock=clock,
            main_units=main_units,
        ),
        backfill_pushes=BackfillPushes(
            outbound_worker(retry_queue=BACKFILL_PUSH_QUEUE, listener=progress, in_order=True), backfill_store, progress
        ),
        ordered_lanes=lanes,
    )
