"""Outbound stage: first attempts and retries are pushed by the same worker from separate queues,
so retries never take the first-attempt path's capacity."""

import azure.functions as func

from shared.container import services
from shared.subscriptions.messages import OUTBOUND_QUEUE, RETRY_QUEUE, DeliveryBatch
from shared.telemetry import consume_span

bp = func.Blueprint()


@bp.function_name("events_outbound")
@bp.service_bus_queue_trigger(arg_name="message", queue_name=OUTBOUND_QUEUE, connection="ServiceBusConnection")
async def events_outbound(message: func.ServiceBusMessage) -> None:
    batch = DeliveryBatch.model_validate_json(message.get_body())
    with consume_span("events.outbound", message.application_properties or {}):
        await (await services()).outbound.handle(batch.deliveries())


@bp.function_name("events_retry")
@bp.service_bus_queue_trigger(arg_name="message", queue_name=RETRY_QUEUE, connection="ServiceBusConnection")
async def events_retry(message: func.ServiceBusMessage) -> None:
    batch = DeliveryBatch.model_validate_json(message.get_body())
    with consume_span("events.retry", message.application_properties or {}):
        await (await services()).outbound.handle(batch.deliveries())
