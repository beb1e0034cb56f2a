"""Herald's public HTTP API (FastAPI): one module per endpoint group, validation at the edge."""
