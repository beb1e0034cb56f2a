"""ACS delivery reports through Event Grid. Raising makes Event Grid retry (bounded: then parked).

The system topic delivers the Event Grid schema. An event in another schema, or whose data is not an
object, is refused: logged, counted (``herald.reports.refused``) and parked, and the trigger returns,
since a retry would deliver the same event for a day.
"""

import logging

import azure.functions as func

from shared.composition.root import services
from shared.notifications.model import Channel

bp = func.Blueprint()
log = logging.getLogger(__name__)


async def _report(channel: Channel, event: func.EventGridEvent) -> str:
    # The worker's converter builds a CloudEvent from CloudEvents-schema input whatever the annotation says.
    cloud_event = isinstance(event, func.CloudEvent)
    reports = (await services()).notifications.reports
    return await reports.from_event_grid(channel, event.id, event.get_json(), cloud_event=cloud_event)


@bp.function_name("email_delivery_report")
@bp.event_grid_trigger(arg_name="event")
async def email_delivery_report(event: func.EventGridEvent) -> None:
    outcome = await _report(Channel.EMAIL, event)
    log.info("email delivery report", extra={"event_id": event.id, "outcome": outcome})


@bp.function_name("sms_delivery_report")
@bp.event_grid_trigger(arg_name="event")
async def sms_delivery_report(event: func.EventGridEvent) -> None:
    outcome = await _report(Channel.SMS, event)
    log.info("sms delivery report", extra={"event_id": event.id, "outcome": outcome})
