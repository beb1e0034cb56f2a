"""Inbound stage: committed log rows arrive here to be matched and fanned out."""

import logging

import azure.functions as func

from shared.container import services
from shared.events.dispatch import INBOUND_QUEUE, InboundMessage
from shared.telemetry import consume_span

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("events_inbound")
@bp.service_bus_queue_trigger(arg_name="message", queue_name=INBOUND_QUEUE, connection="ServiceBusConnection")
async def events_inbound(message: func.ServiceBusMessage) -> None:
    inbound = InboundMessage.model_validate_json(message.get_body())
    with consume_span("events.inbound", message.application_properties or {}):
        rows = await (await services()).inbound.load(inbound)
    log.info(
        "inbound rows loaded",
        extra={"resource": inbound.resource, "rows": len(rows), "events": sum(len(r.events) for r in rows)},
    )
