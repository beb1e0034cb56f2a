"""Notify stage: deliveries of notification subscriptions become notification orders.

Fan-out sends them here (``events-notify``) instead of ``events-outbound``, so the webhook
worker never sees them; the orders then follow the notification pipeline.
"""

import logging

import azure.functions as func

from shared.composition.root import services
from shared.subscriptions.messages import NOTIFY_QUEUE, DeliveryBatch
from shared.subscriptions.notification_target import ORDERED
from shared.telemetry import consume_span

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("events_notify")
@bp.service_bus_queue_trigger(arg_name="message", queue_name=NOTIFY_QUEUE, connection="ServiceBusConnection")
async def events_notify(message: func.ServiceBusMessage) -> None:
    batch = DeliveryBatch.model_validate_json(message.get_body())
    herald = await services()
    with consume_span("events.notify", message.application_properties or {}):
        outcomes = await herald.notifier.handle(batch.deliveries())
    ordered = sum(1 for outcome in outcomes if outcome.outcome == ORDERED)
    log.info("event notifications ordered", extra={"ordered": ordered, "skipped": len(outcomes) - ordered})
