"""Timed upkeep of the event log: the outbox sweep and the retention sweep."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Protocol

from shared.clock import Clock
from shared.events.dispatch import OutboxSweeper
from shared.events.log import EventLog

log = logging.getLogger(__name__)

OUTBOX_CHECKPOINT = "outbox-sweep"
# Resources touch the directory at least every 30 s while publishing; look a little further back.
_DIRECTORY_SLACK = timedelta(minutes=2)


class Checkpoints(Protocol):
    async def get(self, name: str) -> datetime | None: ...

    async def put(self, name: str, at: datetime) -> None: ...


async def sweep_outbox(sweeper: OutboxSweeper, checkpoints: Checkpoints, now: datetime) -> int:
    """Re-dispatch orphaned outbox entries of every resource active since the last completed sweep."""
    previous = await checkpoints.get(OUTBOX_CHECKPOINT)
    active_since = previous - _DIRECTORY_SLACK if previous else datetime(2000, 1, 1, tzinfo=UTC)
    swept = await sweeper.sweep(now, active_since=active_since)
    await checkpoints.put(OUTBOX_CHECKPOINT, now)
    return swept


async def apply_retention(log_: EventLog, now: datetime, retention: timedelta) -> int:
    """Remove events stored longer than the retention, resource by resource."""
    removed = 0
    cutoff = now - retention
    for resource in await log_.all_resources():
        count = await log_.expire(resource, cutoff)
        if count:
            log.info("retention removed events", extra={"resource": resource, "events": count})
        removed += count
    return removed


class EventLogUpkeep:
    """What the event log's timers run: the outbox sweep (every minute) and retention (nightly)."""

    def __init__(
        self, log_: EventLog, sweeper: OutboxSweeper, checkpoints: Checkpoints, clock: Clock, *, retention: timedelta
    ) -> None:
        self._log = log_
        self._sweeper = sweeper
        self._checkpoints = checkpoints
        self._clock = clock
        self._retention = retention

    async def sweep_outbox(self) -> int:
        """Re-dispatch orphaned outbox entries; returns how many."""
        return await sweep_outbox(self._sweeper, self._checkpoints, self._clock.now())

    async def apply_retention(self) -> int:
        """Remove events stored longer than the retention; returns how many."""
        return await apply_retention(self._log, self._clock.now(), self._retention)
