"""Herald's Azure Functions app: composes the HTTP API and the pipeline stages. No logic here."""

import azure.functions as func

from functions import delivery_reports, eventgrid_ingest, inbound, notifications, outbound, timers, validation
from functions import notify as event_notify
from functions.http_api import api
from shared.telemetry import configure_telemetry

configure_telemetry()

app = func.AsgiFunctionApp(app=api, http_auth_level=func.AuthLevel.ANONYMOUS, function_name="http_api")
app.register_functions(eventgrid_ingest.bp)
app.register_functions(inbound.bp)
app.register_functions(outbound.bp)
app.register_functions(validation.bp)
app.register_functions(timers.bp)
app.register_functions(notifications.bp)
app.register_functions(delivery_reports.bp)
app.register_functions(event_notify.bp)
