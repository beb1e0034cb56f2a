"""ACS delivery reports through Event Grid. Raising makes Event Grid retry (bounded: then parked).

The system topic delivers the Event Grid schema. An event in another schema, or whose data is not an
object, is refused: logged, counted (``herald.reports.refused``) and parked, and the trigger returns,
since a retry would deliver the same event for a day.
"""

import json
import logging
from collections.abc import Mapping

import azure.functions as func

from shared.container import services
from shared.notifications.model import Channel
from shared.notifications.service import Notifications

bp = func.Blueprint()
log = logging.getLogger(__name__)


async def _report(notifications: Notifications, channel: Channel, event: func.EventGridEvent) -> str:
    data = event.get_json()
    # The worker's converter builds a CloudEvent from CloudEvents-schema input whatever the annotation says.
    if isinstance(event, func.CloudEvent):
        reason = "CLOUDEVENTS_SCHEMA"
    elif data is not None and not isinstance(data, Mapping):
        reason = "DATA_NOT_AN_OBJECT"
    else:
        report = data or {}
        if channel is Channel.EMAIL:
            return await notifications.email_delivery_report(report)
        return await notifications.sms_delivery_report(report)
    payload = json.dumps({"id": event.id, "data": data}, default=str)
    return await notifications.refuse_report(channel, event.id or "(none)", payload, reason)


@bp.function_name("email_delivery_report")
@bp.event_grid_trigger(arg_name="event")
async def email_delivery_report(event: func.EventGridEvent) -> None:
    outcome = await _report((await services()).notifications, Channel.EMAIL, event)
    log.info("email delivery report", extra={"event_id": event.id, "outcome": outcome})


@bp.function_name("sms_delivery_report")
@bp.event_grid_trigger(arg_name="event")
async def sms_delivery_report(event: func.EventGridEvent) -> None:
    outcome = await _report((await services()).notifications, Channel.SMS, event)
    log.info("sms delivery report", extra={"event_id": event.id, "outcome": outcome})
