"""Timer triggers on six-field NCRONTAB schedules (seconds first), in UTC like the Functions host.

One invocation at a time per timer: an occurrence missed while the previous run was still going
is run once afterwards with ``past_due=True`` rather than queued up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from croniter import croniter

from devhost.bindings import timer_input
from devhost.durations import is_timespan, parse_timespan
from devhost.functions_index import FunctionSpec
from devhost.invocation import Invoker
from devhost.timer_lock import TimerLock

log = logging.getLogger("devhost")

# How late an invocation may start before it counts as past due.
PAST_DUE_TOLERANCE = timedelta(seconds=1)


class Schedule:
    """Next occurrences of an NCRONTAB expression or a ``[d.]hh:mm:ss`` TimeSpan interval."""

    def __init__(self, expression: str) -> None:
        self.expression = expression.strip()
        self._interval: timedelta | None = None
        if is_timespan(self.expression):
            self._interval = parse_timespan(self.expression)
            if self._interval <= timedelta(0):
                raise ValueError(f"timer interval {expression!r} must be positive")
        elif len(self.expression.split()) != 6 or not croniter.is_valid(self.expression, second_at_beginning=True):
            raise ValueError(f"{expression!r} is not a six-field NCRONTAB expression ({{second}} {{minute}} ...)")

    def next_after(self, moment: datetime) -> datetime:
        if self._interval is not None:
            return moment + self._interval
        upcoming: datetime = croniter(self.expression, moment, second_at_beginning=True).get_next(datetime)
        return upcoming


class TimerRunner:
    """Fires one timer function until stopped."""

    def __init__(self, spec: FunctionSpec, invoker: Invoker, lock: TimerLock | None = None) -> None:
        """``lock``: the listener singleton of several instances (devhost/timer_lock.py); the schedule
        runs only while this instance holds it."""
        if spec.schedule is None:
            raise ValueError(f"{spec.name} has no schedule")
        self.spec = spec
        self.schedule = Schedule(spec.schedule)
        self._invoker = invoker
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last: datetime | None = None
        self._lock = lock

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"devhost-timer-{self.spec.name}")

    async def stop(self, grace_seconds: float) -> None:
        """Stop scheduling; let a running invocation finish for up to ``grace_seconds``."""
        self._stopping.set()
        if self._task is None:
            return
        done, _ = await asyncio.wait({self._task}, timeout=grace_seconds)
        if not done:
            log.warning("devhost: timer %s still running at shutdown; cancelling", self.spec.name)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        if self._lock is None:
            await self._schedule()
            return
        try:
            while await self._lock.acquire(self._stopping):
                log.info("devhost: this instance runs timer %s", self.spec.name)
                await self._schedule()
        finally:
            await self._lock.release()

    async def _schedule(self) -> None:
        """Fire on schedule until stopped or, with a lock, until the lock is no longer held."""
        lock = self._lock
        if self.spec.run_on_startup:
            now = datetime.now(UTC)
            await self._fire(now, now)
        due = self.schedule.next_after(datetime.now(UTC))
        while not self._stopping.is_set():
            delay = (due - datetime.now(UTC)).total_seconds()
            if delay > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    # With a lock, wake each second to notice a lease that was lost.
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay if lock is None else min(delay, 1.0))
                if self._stopping.is_set():
                    return
                if lock is not None and due > datetime.now(UTC):
                    continue
            if lock is not None and not lock.held():
                log.warning("devhost: this instance lost timer %s's lock; another instance may take it", self.spec.name)
                return
            started = datetime.now(UTC)
            await self._fire(due, started)
            # Computed from the start of this run, so occurrences missed while it ran collapse into
            # a single past-due run instead of a burst of catch-up runs.
            due = self.schedule.next_after(max(due, started))

    async def _fire(self, due: datetime, started: datetime) -> None:
        past_due = started - due > PAST_DUE_TOLERANCE
        timer = timer_input(
            self.spec.name,
            past_due=past_due,
            last=self._last or due,
            following=self.schedule.next_after(started),
            updated=started,
        )
        self._last = started
        await self._invoker.invoke(self.spec, timer, log_fields={"past_due": str(past_due).lower()})
