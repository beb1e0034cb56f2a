"""Ingestion stage: CloudEvents routed in through an Event Grid custom topic."""

from datetime import UTC, datetime

import azure.functions as func

from shared.container import services
from shared.events.ingest import document_of, ingest

bp = func.Blueprint()


@bp.function_name("ingest_event_grid")
@bp.event_grid_trigger(arg_name="event")
async def ingest_event_grid(event: func.CloudEvent) -> None:
    document = document_of(
        id=event.id,
        source=event.source,
        type=event.type,
        specversion=event.specversion,
        time=event.time,
        subject=event.subject,
        datacontenttype=event.datacontenttype,
        dataschema=event.dataschema,
        data=event.get_json(),
        extensions=event.extension_attrs,
    )
    await ingest((await services()).publisher, document, datetime.now(UTC))
