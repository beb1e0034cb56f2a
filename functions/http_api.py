"""The HTTP API stage: Herald's FastAPI app, served by the Functions host through ASGI."""

from shared.api.app import create_api
from shared.composition.root import close, services

api = create_api(services, on_shutdown=close)
