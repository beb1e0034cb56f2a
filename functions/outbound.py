"""Outbound stage: first attempts and retries are pushed by the same worker from separate queues,
so retries never take the first-attempt path's capacity."""

import azure.functions as func

from shared.composition.root import services
from shared.subscriptions.messages import OUTBOUND_QUEUE, RETRY_QUEUE, DeliveryBatch
from shared.telemetry import consume_span, pipeline_stage

bp = func.Blueprint()


@bp.function_name("events_outbound")
@bp.service_bus_queue_trigger(arg_name="message", queue_name=OUTBOUND_QUEUE, connection="ServiceBusConnection")
async def events_outbound(message: func.ServiceBusMessage) -> None:
    await _push(message, "events.outbound", first_attempt=True)


@bp.function_name("events_retry")
@bp.service_bus_queue_trigger(arg_name="message", queue_name=RETRY_QUEUE, connection="ServiceBusConnection")
async def events_retry(message: func.ServiceBusMessage) -> None:
    await _push(message, "events.retry", first_attempt=False)


async def _push(message: func.ServiceBusMessage, span: str, *, first_attempt: bool) -> None:
    batch = DeliveryBatch.model_validate_json(message.get_body())
    properties = message.application_properties or {}
    # First attempts record the pushed hop; a retry's time in its queue is its deliberate back-off.
    stage = (
        pipeline_stage(span, properties, message.enqueued_time_utc, stage="outbound")
        if first_attempt
        else consume_span(span, properties)
    )
    with stage:
        await (await services()).outbound.handle(
            batch.deliveries(), message_id=message.message_id, redelivered=(message.delivery_count or 1) > 1
        )
