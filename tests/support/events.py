"""Helpers to build and publish CloudEvents in tests."""

from __future__ import annotations

import json
from typing import Any

import httpx

STRUCTURED = {"content-type": "application/cloudevents+json"}
BATCH = {"content-type": "application/cloudevents-batch+json"}


def event(resource: str, event_id: str, **attributes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": "urn:herald:test:publisher",
        "type": "no.example.case.updated",
        "resource": resource,
    }
    document.update(attributes)
    return document


def binary_headers(resource: str, event_id: str = "bin-1", **headers: str | bytes) -> list[tuple[str, str | bytes]]:
    """A binary-mode event's headers: the required ``ce-`` ones, then ``headers`` (``ce_subject`` is
    ``ce-subject``); one of ``headers`` named as a required one takes its place."""
    required = {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": "urn:herald:test:publisher",
        "ce-type": "no.example.case.updated",
        "ce-resource": resource,
    }
    given = {name.replace("_", "-"): value for name, value in headers.items()}
    return [*{**required, **given}.items()]


async def publish(client: httpx.AsyncClient, headers: dict[str, str], events: list[dict[str, Any]]) -> httpx.Response:
    return await client.post("/api/v1/events", headers={**headers, **BATCH}, content=json.dumps(events))


def next_link(response: httpx.Response) -> str:
    link = response.headers["link"]
    assert link.endswith('>; rel="next"'), link
    return link[1 : link.index(">")]


async def read_all(
    client: httpx.AsyncClient, headers: dict[str, str], url: str, *, max_pages: int = 10_000
) -> tuple[list[dict[str, Any]], str]:
    """Follow next links until an empty page; returns the events seen and the last next link."""
    seen: list[dict[str, Any]] = []
    for _ in range(max_pages):
        response = await client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        url = next_link(response)
        if not page:
            return seen, url
        seen.extend(page)
    raise AssertionError("too many pages")
