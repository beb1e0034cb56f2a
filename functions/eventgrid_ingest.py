"""Ingestion stage: CloudEvents the Event Grid custom topic routes to the ``events-eventgrid`` queue."""

from datetime import UTC, datetime

import azure.functions as func

from shared.container import services
from shared.events.ingest import EVENTGRID_QUEUE, ingest

bp = func.Blueprint()


@bp.function_name("ingest_event_grid")
@bp.service_bus_queue_trigger(arg_name="message", queue_name=EVENTGRID_QUEUE, connection="ServiceBusConnection")
async def ingest_event_grid(message: func.ServiceBusMessage) -> None:
    herald = await services()
    await ingest(
        message.get_body(),
        datetime.now(UTC),
        publisher=herald.publisher,
        authorizer=herald.access.authorizer,
        identity=herald.settings.eventgrid_publisher,
    )
