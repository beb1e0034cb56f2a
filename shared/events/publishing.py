"""Publishing: validated events are appended to their resources' logs, idempotently."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass

from shared.events.log import AppendOutcome, AppendResult, EventLog
from shared.events.model import ValidatedEvent
from shared.telemetry import record_events_published


@dataclass(frozen=True)
class Conflict:
    index: int
    id: str
    source: str


@dataclass(frozen=True)
class PublishResult:
    accepted: list[str]
    stored: int
    duplicates: int
    conflicts: list[Conflict]


class EventPublisher:
    def __init__(self, log: EventLog) -> None:
        self._log = log

    async def publish(self, events: list[ValidatedEvent]) -> PublishResult:
        """Append every event; each resource's events keep their order. Returns when all are durable."""
        by_resource: dict[str, list[int]] = defaultdict(list)
        for index, event in enumerate(events):
            by_resource[event.resource].append(index)

        async def append(resource: str, indexes: list[int]) -> list[tuple[int, AppendResult]]:
            results = await self._log.append(resource, [events[i] for i in indexes])
            return list(zip(indexes, results, strict=True))

        outcomes: dict[int, AppendResult] = {}
        for pairs in await asyncio.gather(*(append(r, ix) for r, ix in by_resource.items())):
            outcomes.update(pairs)
        for resource, indexes in by_resource.items():
            record_events_published(sum(1 for i in indexes if outcomes[i].outcome is AppendOutcome.STORED), resource)

        conflicts = [
            Conflict(i, events[i].id, events[i].source)
            for i in range(len(events))
            if outcomes[i].outcome is AppendOutcome.CONFLICT
        ]
        return PublishResult(
            accepted=[events[i].id for i in range(len(events)) if outcomes[i].outcome is not AppendOutcome.CONFLICT],
            stored=sum(1 for r in outcomes.values() if r.outcome is AppendOutcome.STORED),
            duplicates=sum(1 for r in outcomes.values() if r.outcome is AppendOutcome.DUPLICATE),
            conflicts=conflicts,
        )
