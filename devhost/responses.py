"""A minimal response value shared by devhost's own endpoints."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(status: int, document: Any, content_type: str = "application/json") -> Response:
    return Response(status, json.dumps(document).encode("utf-8"), [("content-type", content_type)])


def problem(status: int, title: str, detail: str) -> Response:
    """RFC 9457 problem details, as Herald's API answers errors."""
    document = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return json_response(status, document, "application/problem+json")
