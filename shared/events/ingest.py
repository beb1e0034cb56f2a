"""Ingestion from the Event Grid custom topic: its CloudEvents become published events.

The topic delivers each CloudEvent (CloudEvents 1.0 schema) to the Service Bus queue
``events-eventgrid``, one event a message, its body the JSON exactly as the publisher sent it. Herald
decodes and validates that body with the same code as a structured-mode ``POST /api/v1/events``,
so every attribute (the ``resource`` extension, a ``time`` with any UTC offset) is taken and stored
as sent. The Functions Event Grid binding is not in the path: its CloudEvent converter accepts only
``Z``/``+00:00`` times and would refuse valid events before Herald saw them.

An invalid event is logged with every problem and dropped: a redelivery would carry the same bytes
and fail the same way, and the trigger binding completes messages itself, so it cannot dead-letter
one. A failure to store (storage unavailable) raises instead, so Service Bus redelivers the message
and, after ``maxDeliveryCount`` tries, dead-letters it.
"""

from __future__ import annotations

import logging
from datetime import datetime

from shared.events.model import EventInvalid, EventTooLarge, MalformedJSON, decode_json, validate_event
from shared.events.publishing import EventPublisher

log = logging.getLogger(__name__)

EVENTGRID_QUEUE = "events-eventgrid"


async def ingest(publisher: EventPublisher, body: bytes, received_at: datetime) -> bool:
    """Publish one routed structured-mode event; False when it was refused (logged with the reason)."""
    try:
        event = validate_event(decode_json(body), received_at=received_at)
    except (MalformedJSON, EventInvalid, EventTooLarge) as error:
        event_id = getattr(error, "event_id", None)
        log.warning("event from Event Grid refused", extra={"event_id": event_id, "reason": str(error)})
        return False
    result = await publisher.publish([event])
    if result.conflicts:
        log.warning(
            "event from Event Grid reuses a published (source, id) with other content",
            extra={"event_id": event.id, "source": event.source},
        )
        return False
    return True
