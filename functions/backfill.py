"""Backfill: turns that scan a subscription's range of the log, and the pushes they queue, each from a
queue of its own, so a backfill never takes the live queues' capacity."""

import azure.functions as func

from shared.composition.root import services
from shared.subscriptions.backfill import BACKFILL_PUSH_QUEUE, BACKFILL_QUEUE, BackfillTurn
from shared.subscriptions.messages import DeliveryBatch
from shared.telemetry import consume_span

bp = func.Blueprint()


@bp.function_name("subscription_backfill")
@bp.service_bus_queue_trigger(arg_name="message", queue_name=BACKFILL_QUEUE, connection="ServiceBusConnection")
async def subscription_backfill(message: func.ServiceBusMessage) -> None:
    await (await services()).backfills.advance(
        BackfillTurn.model_validate_json(message.get_body()), redelivered=(message.delivery_count or 1) > 1
    )


@bp.function_name("events_backfill")
@bp.service_bus_queue_trigger(arg_name="message", queue_name=BACKFILL_PUSH_QUEUE, connection="ServiceBusConnection")
async def events_backfill(message: func.ServiceBusMessage) -> None:
    batch = DeliveryBatch.model_validate_json(message.get_body())
    with consume_span("events.backfill", message.application_properties or {}):
        await (await services()).backfill_pushes.handle(
            batch.deliveries(), message_id=message.message_id, redelivered=(message.delivery_count or 1) > 1
        )
