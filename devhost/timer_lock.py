"""The Functions host's timer singleton, on Azurite: one instance at a time runs a timer's schedule.

In Azure the timer trigger's listener is a singleton (``SingletonMode.Listener``): the instance that
holds a lease on the lock blob ``locks/<hostId>/<Function>.Listener`` runs the schedule, the others
try to take the lease now and then and start the schedule once they have it. devhost keeps the same
lock as one entity per timer in a table of its own, moved under If-Match: an owner and the time its
lease runs out. The holder renews it; an instance that stops gives it up; one that dies leaves it to
run out. Table entities are used because they carry the same guarantee as a blob lease here (one
holder, taken over only once expired) with the storage client devhost already has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from devhost.invocation import short_error

log = logging.getLogger("devhost")

LOCKS_TABLE = "devhosttimerlocks"
LEASE_SECONDS = 15.0
# The holder stops firing this long before its lease runs out, so a renewal that failed unseen never
# lets two instances fire at once.
SAFETY_SECONDS = 3.0
RENEW_EVERY_SECONDS = 5.0
# How often an instance without the lease tries to take it (the host's listener lock recovery poll
# is a minute; shorter here, so a stopped devhost instance's timers move on within seconds).
ACQUIRE_EVERY_SECONDS = 5.0
_PARTITION = "timer"


class TimerLock:
    """One timer's listener lease, held by ``owner`` (stable across a restart of the same instance, so
    a restarted instance takes its own lease back at once, as a renewing holder would)."""

    def __init__(self, table: TableClient, function_name: str, owner: str) -> None:
        self._table = table
        self.function_name = function_name
        self.owner = owner
        self._etag: str | None = None
        self._held_until = 0.0
        self._renewer: asyncio.Task[None] | None = None

    def held(self) -> bool:
        return time.time() < self._held_until - SAFETY_SECONDS

    async def _try_take(self) -> bool:
        now = time.time()
        until = now + LEASE_SECONDS
        entity = {"PartitionKey": _PARTITION, "RowKey": self.function_name, "owner": self.owner, "until": until}
        try:
            current = await self._table.get_entity(_PARTITION, self.function_name)
        except ResourceNotFoundError:
            try:
                created = await self._table.create_entity(entity)
            except ResourceExistsError:
                return False
            self._took(created.get("etag"), until)
            return True
        if current.get("owner") != self.owner and float(current.get("until", 0.0)) > now:
            return False
        try:
            updated = await self._table.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=current.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceNotFoundError, ResourceExistsError, AzureError):
            return False
        self._took(updated.get("etag"), until)
        return True

    def _took(self, etag: str | None, until: float) -> None:
        self._etag = etag
        self._held_until = until

    async def acquire(self, stopping: asyncio.Event) -> bool:
        """Wait until this instance holds the lease (True) or ``stopping`` is set (False)."""
        while not stopping.is_set():
            try:
                if await self._try_take():
                    if self._renewer is not None:
                        self._renewer.cancel()
                    self._renewer = asyncio.create_task(self._renew(), name=f"devhost-timer-lock-{self.function_name}")
                    return True
            except AzureError as error:
                log.warning("devhost: timer lock %s: %s; trying again", self.function_name, short_error(error))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=ACQUIRE_EVERY_SECONDS)
        return False

    async def _renew(self) -> None:
        while self.held():
            await asyncio.sleep(RENEW_EVERY_SECONDS)
            until = time.time() + LEASE_SECONDS
            entity = {"PartitionKey": _PARTITION, "RowKey": self.function_name, "owner": self.owner, "until": until}
            try:
                updated = await self._table.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=self._etag, match_condition=MatchConditions.IfNotModified
                )
            except AzureError as error:
                # Taken over or unreachable: held() turns false once the current lease is nearly over.
                log.warning("devhost: could not renew timer lock %s: %s", self.function_name, short_error(error))
                continue
            self._took(updated.get("etag"), until)

    async def release(self) -> None:
        """Give the lease up, so another instance takes the schedule at its next try."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        if self._etag is None:
            return
        entity = {"PartitionKey": _PARTITION, "RowKey": self.function_name, "owner": self.owner, "until": 0.0}
        with contextlib.suppress(AzureError):
            await self._table.update_entity(
                entity, mode=UpdateMode.REPLACE, etag=self._etag, match_condition=MatchConditions.IfNotModified
            )
        self._etag = None
        self._held_until = 0.0


async def ensure_locks_table(table: TableClient) -> None:
    with contextlib.suppress(ResourceExistsError):
        await table.create_table()
