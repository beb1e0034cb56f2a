"""Herald's Azure Functions app: composes the HTTP API and the pipeline stages. No logic here."""

from shared.composition.telemetry import configure_telemetry

# First: the Azure Monitor distro instruments FastAPI by patching the class, so the API must be
# built after it ran, or its requests (and the trace context every publish carries on) go unrecorded.
configure_telemetry()

import azure.functions as func  # noqa: E402

from functions import (  # noqa: E402
    backfill,
    delivery_reports,
    eventgrid_ingest,
    inbound,
    notifications,
    notify,
    outbound,
    timers,
    validation,
)
from functions.http_api import api  # noqa: E402

app = func.AsgiFunctionApp(app=api, http_auth_level=func.AuthLevel.ANONYMOUS, function_name="http_api")
for stage in (
    eventgrid_ingest,
    inbound,
    outbound,
    backfill,
    validation,
    timers,
    notifications,
    delivery_reports,
    notify,
):
    app.register_functions(stage.bp)
