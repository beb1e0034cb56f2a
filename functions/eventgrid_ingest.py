"""Ingestion stage: CloudEvents the Event Grid custom topic routes to the ``events-eventgrid`` queue."""

import azure.functions as func

from shared.composition.root import services
from shared.events.ingest import EVENTGRID_QUEUE

bp = func.Blueprint()


@bp.function_name("ingest_event_grid")
@bp.service_bus_queue_trigger(arg_name="message", queue_name=EVENTGRID_QUEUE, connection="ServiceBusConnection")
async def ingest_event_grid(message: func.ServiceBusMessage) -> None:
    # A refused event is logged and counted by the use case; the message completes either way.
    await (await services()).eventgrid_ingest.receive(message.get_body())
