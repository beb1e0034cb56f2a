"""Herald's tables and queues: their names, the clients that reach them, and their creation where
nothing else creates them (devhost, tests; Bicep does it in Azure, and a test keeps the two in step)."""

from __future__ import annotations

from shared.adapters.storage_queue_bus import StorageQueueBus, dead_letter_queue_name
from shared.adapters.table_authorization import POLICIES_TABLE, ROLES_TABLE
from shared.adapters.table_backfills import BACKFILLS_TABLE
from shared.adapters.table_checkpoints import STATE_TABLE
from shared.adapters.table_contacts import CONTACTS_TABLE
from shared.adapters.table_dead_letters import DEAD_LETTERS_TABLE
from shared.adapters.table_dead_reports import REPORTS_TABLE
from shared.adapters.table_event_log import EVENTS_TABLE, RESOURCES_TABLE
from shared.adapters.table_identities import IDENTITIES_TABLE
from shared.adapters.table_notifications import NOTIFICATIONS_TABLE
from shared.adapters.table_order_governance import TABLES as ORDER_GOVERNANCE_TABLES
from shared.adapters.table_ordered_lanes import LANES_TABLE
from shared.adapters.table_orders import ORDERS_TABLE
from shared.adapters.table_publish_limits import PUBLISH_LIMITS_TABLE
from shared.adapters.table_send_pause import PAUSE_TABLE
from shared.adapters.table_subscription_store import INDEX_TABLE, OWNERS_TABLE
from shared.adapters.tables import ensure_tables, table_service
from shared.config import BusKind, Settings
from shared.events.dispatch import INBOUND_QUEUE
from shared.events.ingest import EVENTGRID_QUEUE
from shared.messaging import Bus
from shared.notifications.messages import QUEUES as NOTIFICATION_QUEUES
from shared.subscriptions.backfill import BACKFILL_PUSH_QUEUE, BACKFILL_QUEUE
from shared.subscriptions.messages import NOTIFY_QUEUE, OUTBOUND_QUEUE, RETRY_QUEUE, VALIDATION_QUEUE

# The delivery log's day tables (deliveries<day>) are created as days begin, so they are not listed.
TABLES: tuple[str, ...] = (
    # events
    EVENTS_TABLE,
    RESOURCES_TABLE,
    STATE_TABLE,
    # identity
    POLICIES_TABLE,
    ROLES_TABLE,
    PUBLISH_LIMITS_TABLE,
    IDENTITIES_TABLE,
    # subscriptions
    INDEX_TABLE,
    OWNERS_TABLE,
    DEAD_LETTERS_TABLE,
    BACKFILLS_TABLE,
    LANES_TABLE,
    # notifications: orders, notifications (with their status-event outbox), dead reports, send pause,
    # contacts, then sender grants and notification counters
    ORDERS_TABLE,
    NOTIFICATIONS_TABLE,
    REPORTS_TABLE,
    PAUSE_TABLE,
    CONTACTS_TABLE,
    *ORDER_GOVERNANCE_TABLES,
)

# One queue a pipeline stage; each has exactly one trigger (tests/architecture/test_structure.py).
QUEUES: tuple[str, ...] = (
    INBOUND_QUEUE,
    OUTBOUND_QUEUE,
    RETRY_QUEUE,
    VALIDATION_QUEUE,
    *NOTIFICATION_QUEUES,  # notifications-orders, notifications-email, notifications-sms
    NOTIFY_QUEUE,  # notification subscriptions' deliveries (functions/notify.py)
    EVENTGRID_QUEUE,  # CloudEvents the Event Grid custom topic routes in (functions/eventgrid_ingest.py)
    BACKFILL_QUEUE,  # turns of running backfills (functions/backfill.py)
    BACKFILL_PUSH_QUEUE,  # backfilled deliveries and their retries (functions/backfill.py)
)


def bus_for(config: Settings) -> Bus:
    """Service Bus in Azure; Azure Storage queues on Azurite, which devhost drives with peek-lock semantics."""
    if config.bus is BusKind.SERVICE_BUS:
        from shared.adapters.service_bus import ServiceBusBus

        return ServiceBusBus.from_connection(config.service_bus)
    return StorageQueueBus(config.storage_connection_string)


async def provision(settings: Settings) -> None:
    service = table_service(settings)
    try:
        await ensure_tables(service, TABLES)
    finally:
        await service.close()
    if settings.bus is BusKind.STORAGE_QUEUE:
        bus = StorageQueueBus(settings.storage_connection_string)
        try:
            await bus.ensure_queues([name for queue in QUEUES for name in (queue, dead_letter_queue_name(queue))])
        finally:
            await bus.close()
