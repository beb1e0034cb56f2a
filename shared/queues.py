"""Queue names: one per pipeline stage; triggers and senders both use these names."""

from shared.events.dispatch import INBOUND_QUEUE
from shared.events.ingest import EVENTGRID_QUEUE
from shared.notifications.orders import QUEUES as NOTIFICATION_QUEUES
from shared.subscriptions.messages import NOTIFY_QUEUE, OUTBOUND_QUEUE, RETRY_QUEUE, VALIDATION_QUEUE

ALL_QUEUES: tuple[str, ...] = (INBOUND_QUEUE, OUTBOUND_QUEUE, RETRY_QUEUE, VALIDATION_QUEUE)
ALL_QUEUES += NOTIFICATION_QUEUES  # notifications-orders, notifications-email, notifications-sms
ALL_QUEUES += (NOTIFY_QUEUE,)  # notification subscriptions' deliveries (functions/notify.py)
ALL_QUEUES += (EVENTGRID_QUEUE,)  # CloudEvents the Event Grid custom topic routes in (functions/eventgrid_ingest.py)
