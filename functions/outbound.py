"""Outbound stage: first attempts and retries are pushed by the same worker from separate queues,
so retries never take the first-attempt path's capacity."""

import azure.functions as func

from shared.composition.root import services
from shared.subscriptions.messages import OUTBOUND_QUEUE, RETRY_QUEUE, DeliveryBatch
from shared.telemetry import consume_span

bp = func.Blueprint()


@bp.function_name("events_outbound")
@bp.service_bus_queue_trigger(arg_name="message", queue_name=OUTBOUND_QUEUE, connection="ServiceBusConnection")
async def events_outbound(message: func.ServiceBusMessage) -> None:
    await _push(message, "events.outbound")


@bp.function_name("events_retry")
@bp.service_bus_queue_trigger(arg_name="message", queue_name=RETRY_QUEUE, connection="ServiceBusConnection")
async def events_retry(message: func.ServiceBusMessage) -> None:
    await _push(message, "events.retry")


async def _push(message: func.ServiceBusMessage, span: str) -> None:
    batch = DeliveryBatch.model_validate_json(message.get_body())
    with consume_span(span, message.application_properties or {}):
        await (await services()).outbound.handle(
            batch.deliveries(), message_id=message.message_id, redelivered=(message.delivery_count or 1) > 1
        )
