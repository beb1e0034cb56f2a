"""Counts storage requests and entities read, through azure-core's request/response hooks."""

from __future__ import annotations

import json
from typing import Any


class StorageCounter:
    """Pass ``**counter.hooks()`` to an Azure storage client to count what it sends and reads."""

    def __init__(self) -> None:
        self.requests = 0
        self.entities_read = 0

    def reset(self) -> None:
        self.requests = 0
        self.entities_read = 0

    def hooks(self) -> dict[str, Any]:
        return {"raw_request_hook": self._request, "raw_response_hook": self._response}

    def _request(self, request: Any) -> None:
        self.requests += 1

    def _response(self, response: Any) -> None:
        http = response.http_response
        if http.request.method != "GET":
            return
        try:
            body = json.loads(http.text())
        except (ValueError, TypeError):
            return
        if isinstance(body, dict):
            self.entities_read += len(body["value"]) if isinstance(body.get("value"), list) else 1
