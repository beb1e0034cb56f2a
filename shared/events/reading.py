"""Reading events with a cursor that never skips and never stalls.

A page is built by scanning the log from the cursor; filters apply while scanning, and the next
cursor is the last position scanned, not the last event returned. So a sparse filter yields short
or empty pages that still advance, and a client that follows next links forever sees every
matching event exactly once, in log order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from shared.events.cursor import CursorExpired, CursorInvalid
from shared.events.log import EventLog, LogRow, Position

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# What one request may scan before it answers with what it found (work per request stays bounded).
MAX_ROWS_SCANNED = 1000
MAX_BYTES_SCANNED = 16 * 1024 * 1024
MAX_PAGE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class EventFilter:
    subject: str | None = None
    alternativesubject: str | None = None
    type: str | None = None
    source: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.subject or self.alternativesubject or self.type or self.source)

    def matches(self, attributes: dict[str, Any]) -> bool:
        return (
            (self.subject is None or attributes.get("subject") == self.subject)
            and (self.alternativesubject is None or attributes.get("alternativesubject") == self.alternativesubject)
            and (self.type is None or attributes.get("type") == self.type)
            and (self.source is None or attributes.get("source") == self.source)
        )


class EventPermit(Protocol):
    """Answers, for each event, whether the reader may see it (authorization before paging)."""

    async def __call__(self, events: Sequence[dict[str, Any]]) -> list[bool]: ...


@dataclass(frozen=True)
class EventPage:
    events: list[bytes]
    next: Position

    def body(self) -> bytes:
        return b"[" + b",".join(self.events) + b"]"


class EventReader:
    def __init__(self, log: EventLog) -> None:
        self._log = log

    async def read(
        self, resource: str, after: Position | None, size: int, filters: EventFilter, permit: EventPermit | None = None
    ) -> EventPage:
        start = after if after is not None else await self._oldest(resource)
        rows = self._log.scan(resource, start.seq, want_events=size)
        first = await anext(rows, None)
        if after is not None:
            first = await self._check_start(resource, after, first)
            if first is not None and first.seq != after.seq:  # re-read after a commit raced the first query
                rows = self._log.scan(resource, first.seq + 1, want_events=size)

        events: list[bytes] = []
        page_bytes = scanned_bytes = scanned_rows = 0
        position = start
        row = first
        while row is not None:
            scanned_rows += 1
            entries = [
                (i, body) for i, body in enumerate(row.events) if not (row.seq == start.seq and i <= start.index)
            ]
            visible = await self._visible([body for _, body in entries], filters, permit)
            for (index, body), show in zip(entries, visible, strict=True):
                scanned_bytes += len(body)
                if not show:
                    position = Position(row.seq, index)
                    continue
                if len(events) >= size or (events and page_bytes + len(body) > MAX_PAGE_BYTES):
                    return EventPage(events, position)
                events.append(body)
                page_bytes += len(body) + 1
                position = Position(row.seq, index)
            if len(events) >= size:
                return EventPage(events, position)  # full: do not fetch a row only to learn there is more
            position = Position(row.seq + 1, -1)
            if scanned_rows >= MAX_ROWS_SCANNED or scanned_bytes >= MAX_BYTES_SCANNED:
                break
            row = await anext(rows, None)
        return EventPage(events, position)

    @staticmethod
    async def _visible(bodies: list[bytes], filters: EventFilter, permit: EventPermit | None) -> list[bool]:
        """Which events the page may show: they match the filters and the reader is authorized."""
        if filters.empty and permit is None:
            return [True] * len(bodies)
        attributes = [json.loads(body) for body in bodies]
        visible = [filters.empty or filters.matches(a) for a in attributes]
        if permit is not None:
            candidates = [k for k, shown in enumerate(visible) if shown]
            for k, allowed in zip(candidates, await permit([attributes[k] for k in candidates]), strict=True):
                visible[k] = allowed
        return visible

    async def check_cursor(self, resource: str, after: Position) -> None:
        """Raises ``CursorInvalid`` or ``CursorExpired`` as ``read`` would for this cursor."""
        await self._check_start(resource, after, await anext(self._log.scan(resource, after.seq, want_events=1), None))

    async def head(self, resource: str) -> Position:
        """The position after every event stored now: a cursor there sees only later events."""
        return Position(await self._log.last_seq(resource) + 1, -1)

    async def position_at(self, resource: str, moment: datetime) -> Position:
        """A cursor before the first event stored at or after ``moment``: its first row by storage time.

        Rows are stored in sequence order, so a binary search over the sequence finds it in a few
        point reads. Retention removes a prefix only, so a missing row lies before the moment."""
        low = await self._log.first_seq(resource)
        high = await self._log.last_seq(resource) + 1
        if low is None:
            return Position(high, -1)
        while low < high:
            middle = (low + high) // 2
            found = await self._log.rows_by_seq(resource, [middle])
            if found and found[0].stored_at >= moment:
                high = middle
            else:
                low = middle + 1
        return Position(low, -1)

    async def _oldest(self, resource: str) -> Position:
        first = await self._log.first_seq(resource)
        if first is not None:
            return Position(first, -1)
        return Position(await self._log.last_seq(resource) + 1, -1)

    async def _check_start(self, resource: str, after: Position, first: LogRow | None) -> LogRow | None:
        """The cursor's row, or why the cursor cannot be served. Rows are never removed but by retention
        (a prefix), and a row appears in the same atomic step that advances the counter."""
        if first is None or first.seq != after.seq:
            last = await self._log.last_seq(resource)
            if after.seq == last + 1 and after.index == -1:
                return None  # at the head: nothing new yet
            if after.seq > last:
                raise CursorInvalid("'after' points past the end of the log")
            # The counter says the row exists: it may have been committed after the first query.
            found = await self._log.rows_by_seq(resource, [after.seq])
            first = found[0] if found else None
            if first is None:
                raise CursorExpired(
                    "'after' points at events removed by retention; start again without 'after' to read from the oldest event"
                )
        if after.index >= len(first.events):
            raise CursorInvalid("'after' points past the end of the log")
        return first
