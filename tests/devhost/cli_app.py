"""The app ``python -m devhost start --app tests.devhost.cli_app:app`` runs in the end-to-end test."""

from __future__ import annotations

import os
from pathlib import Path

import azure.functions as func
from fastapi import FastAPI

api = FastAPI()


@api.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "devhost"}


app = func.AsgiFunctionApp(app=api, http_auth_level=func.AuthLevel.ANONYMOUS, function_name="http_api")


@app.function_name("marker")
@app.service_bus_queue_trigger(arg_name="msg", queue_name="devhost-cli-e2e", connection="ServiceBusConnection")
def marker(msg: func.ServiceBusMessage) -> None:
    Path(os.environ["DEVHOST_E2E_MARKER"]).write_bytes(msg.get_body())
