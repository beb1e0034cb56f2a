"""The event log port: an append-only log per resource with exact, never-skipping positions.

Events are appended in log rows; each row holds one or more events and gets the next sequence
number of its resource. A row becomes visible in the same atomic step that advances the
resource's sequence, so rows appear in sequence order and a reader that has passed sequence N
can never be overtaken by a late commit below N. Positions are (row sequence, index in row).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from shared.events.model import ValidatedEvent


@dataclass(frozen=True, order=True)
class Position:
    """Everything up to and including event ``index`` of row ``seq`` has been seen.

    ``index`` -1 means nothing of row ``seq`` has been seen yet.
    """

    seq: int
    index: int


@dataclass(frozen=True)
class LogRow:
    seq: int
    stored_at: datetime
    events: Sequence[bytes]


class AppendOutcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"  # same (source, id) and same content: accepted, not stored again
    CONFLICT = "conflict"  # same (source, id), other content: refused


@dataclass(frozen=True)
class AppendResult:
    outcome: AppendOutcome
    seq: int | None


class CommitListener(Protocol):
    """Told of the rows each append made durable; hands them on to the inbound stage.

    Every append also commits an outbox entry for its rows; the log clears it once the listener
    returned. A listener that fails (or a process that dies first) leaves the entry for the outbox
    sweeper, which hands the rows to the listener again.
    """

    async def dispatch(self, resource: str, seqs: Sequence[int]) -> None: ...


@dataclass(frozen=True)
class PendingDispatch:
    resource: str
    seqs: Sequence[int]
    outbox_id: str
    committed_at: datetime


class EventLog(Protocol):
    async def append(self, resource: str, events: Sequence[ValidatedEvent]) -> list[AppendResult]:
        """Append events; returns one result per event once durable. The rows are then handed to the
        commit listener before the resource's next commit (a failed or lost hand-over is left to the
        outbox sweeper, never to the caller)."""
        ...

    async def rows_from(self, resource: str, seq: int, limit: int) -> list[LogRow]:
        """Rows with sequence >= ``seq`` in order, at most ``limit``."""
        ...

    def scan(self, resource: str, seq: int, want_events: int) -> AsyncIterator[LogRow]:
        """Rows with sequence >= ``seq`` in order, fetched as the caller consumes them, each request
        sized to bring about ``want_events`` more events at the row density seen so far."""
        ...

    async def rows_by_seq(self, resource: str, seqs: Sequence[int]) -> list[LogRow]: ...

    async def last_seq(self, resource: str) -> int:
        """The highest sequence ever assigned for the resource (0 for none)."""
        ...

    async def first_seq(self, resource: str) -> int | None:
        """The lowest sequence still stored, or None when no row is stored."""
        ...

    async def pending_dispatches(self, resource: str, committed_before: datetime) -> list[PendingDispatch]: ...

    async def clear_dispatch(self, resource: str, outbox_id: str) -> None: ...

    async def resources_active_since(self, since: datetime) -> list[str]: ...

    async def all_resources(self) -> list[str]: ...

    async def expire(self, resource: str, stored_before: datetime) -> int:
        """Remove rows stored before the cutoff (a prefix of the log); returns the number of events removed."""
        ...
