"""ACS delivery reports through Event Grid. Raising makes Event Grid retry (bounded: then parked)."""

import logging

import azure.functions as func

from shared.container import services

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("email_delivery_report")
@bp.event_grid_trigger(arg_name="event")
async def email_delivery_report(event: func.EventGridEvent) -> None:
    outcome = await (await services()).notifications.email_delivery_report(event.get_json() or {})
    log.info("email delivery report", extra={"event_id": event.id, "outcome": outcome})


@bp.function_name("sms_delivery_report")
@bp.event_grid_trigger(arg_name="event")
async def sms_delivery_report(event: func.EventGridEvent) -> None:
    outcome = await (await services()).notifications.sms_delivery_report(event.get_json() or {})
    log.info("sms delivery report", extra={"event_id": event.id, "outcome": outcome})
