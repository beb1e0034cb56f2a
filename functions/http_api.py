"""The HTTP API stage: Herald's FastAPI app, served by the Functions host through ASGI."""

from shared.api.app import create_api
from shared.container import services

api = create_api(services)
