"""Ingestion from an Event Grid custom topic: its CloudEvents become published events.

The topic delivers the CloudEvents 1.0 schema, so every attribute, the ``resource`` extension
included, reaches Herald as the publisher sent it. Invalid events are logged and dropped, not
retried: Event Grid would only send the same invalid event again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shared.events.model import EventInvalid, EventTooLarge, format_time, validate_event
from shared.events.publishing import EventPublisher

log = logging.getLogger(__name__)


def document_of(
    *,
    id: str,
    source: str,
    type: str,
    specversion: str,
    time: datetime | None,
    subject: str | None,
    datacontenttype: str | None,
    dataschema: str | None,
    data: Any,
    extensions: Mapping[str, Any],
) -> dict[str, Any]:
    document: dict[str, Any] = {"specversion": specversion, "id": id, "source": source, "type": type}
    optional = {"subject": subject, "datacontenttype": datacontenttype, "dataschema": dataschema}
    document.update({name: value for name, value in optional.items() if value is not None})
    if time is not None:
        document["time"] = format_time(time)
    document.update(extensions)
    if data is not None:
        document["data"] = data
    return document


async def ingest(publisher: EventPublisher, document: dict[str, Any], received_at: datetime) -> bool:
    """Publish one routed event; False when it was refused (logged with the reason)."""
    try:
        event = validate_event(document, received_at=received_at)
    except (EventInvalid, EventTooLarge) as error:
        log.warning("event from Event Grid refused", extra={"event_id": document.get("id"), "reason": str(error)})
        return False
    result = await publisher.publish([event])
    if result.conflicts:
        log.warning(
            "event from Event Grid reuses a published (source, id) with other content", extra={"event_id": event.id}
        )
        return False
    return True
