"""Inbound stage: committed log rows are matched against subscriptions and fanned out."""

import logging

import azure.functions as func

from shared.composition.root import services
from shared.events.dispatch import INBOUND_QUEUE, InboundMessage
from shared.telemetry import inject_trace_context, pipeline_stage

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("events_inbound")
@bp.service_bus_queue_trigger(arg_name="message", queue_name=INBOUND_QUEUE, connection="ServiceBusConnection")
async def events_inbound(message: func.ServiceBusMessage) -> None:
    inbound = InboundMessage.model_validate_json(message.get_body())
    herald = await services()
    properties = message.application_properties or {}
    with pipeline_stage("events.inbound", properties, message.enqueued_time_utc, stage="inbound"):
        done = await herald.fanout.handle(inbound, inject_trace_context())
    log.info(
        "inbound rows fanned out",
        extra={"resource": inbound.resource, "rows": done.rows, "deliveries": done.deliveries},
    )
