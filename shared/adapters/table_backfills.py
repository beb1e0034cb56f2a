"""Backfills on Table Storage (``backfills``): one partition per subscription, holding

- ``b:<backfill id>``                the backfill: range, cursor, state and scan counts,
- ``t:<backfill id>``                the running totals of what became of its deliveries (pushed, failed,
  dropped): reading a backfill's progress is two point reads, however long it ran,
- ``p:<backfill id>:<message key>``  the delivery ids already counted from one outbound message,
- ``~scanning``                      which backfill of the subscription is scanning now (at most one).

A backfill, its totals and the scanning marker are created, and the marker removed with the backfill's
last scanning write, in one entity-group transaction, so two requests can never both start one.

Counting is crash-safe: a settle adds to the totals and the message's ``p:`` row in one transaction,
both under their ETags, counting only the ids the ``p:`` row does not hold yet. A message settled again
(after a crash, or in waves) adds only the new ones; two writers at once: one wins, the other reads
again. A backfill deleted meanwhile has no totals row, so nothing is written (nothing left behind).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableServiceClient

from shared.adapters.table_transactions import submit_transaction
from shared.adapters.tables import (
    TRANSACTION_OPERATIONS,
    escape_key,
    etag_of,
    get_or_none,
    int64,
    int_of,
    put_if_unchanged,
)
from shared.events.log import Position
from shared.subscriptions.backfill import Backfill, BackfillState, Outcomes
from shared.subscriptions.ports import Final

BACKFILLS_TABLE = "backfills"
SCANNING_KEY = "~scanning"
_CONFLICT_RETRIES = 20
DEFAULT_RETENTION = timedelta(days=14)
# A conflict or a vanished row: the transaction is read again (or, the totals gone, given up).
_LOST_RACE = ("UpdateConditionNotSatisfied", "ConditionNotMet", "EntityAlreadyExists", "ResourceNotFound")


def _job_key(backfill_id: str) -> str:
    return f"b:{backfill_id}"


def _totals_key(backfill_id: str) -> str:
    return f"t:{backfill_id}"


def _outcome_prefix(backfill_id: str) -> str:
    return f"p:{backfill_id}:"


def _entity(backfill: Backfill) -> dict[str, Any]:
    return {
        "PartitionKey": backfill.subscription_id,
        "RowKey": _job_key(backfill.id),
        "consumer": backfill.consumer,
        "resource": backfill.resource,
        "startSeq": int64(backfill.start.seq),
        "startIndex": backfill.start.index,
        "endSeq": int64(backfill.end.seq),
        "endIndex": backfill.end.index,
        "cursorSeq": int64(backfill.cursor.seq),
        "cursorIndex": backfill.cursor.index,
        "state": backfill.state.value,
        "scanDone": backfill.scan_done,
        "scanned": int64(backfill.scanned),
        "matched": int64(backfill.matched),
        "unauthorized": int64(backfill.unauthorized),
        "turn": int64(backfill.turn),
        "waits": backfill.waits,
        "created": backfill.created,
        "updated": backfill.updated,
        "reason": backfill.reason,
    }


def _backfill(entity: Mapping[str, Any]) -> Backfill:
    return Backfill(
        id=entity["RowKey"][len("b:") :],
        subscription_id=entity["PartitionKey"],
        consumer=entity["consumer"],
        resource=entity["resource"],
        start=Position(int_of(entity["startSeq"]), int(entity["startIndex"])),
        end=Position(int_of(entity["endSeq"]), int(entity["endIndex"])),
        cursor=Position(int_of(entity["cursorSeq"]), int(entity["cursorIndex"])),
        state=BackfillState(entity["state"]),
        created=entity["created"],
        updated=entity["updated"],
        scan_done=bool(entity.get("scanDone")),
        scanned=int_of(entity.get("scanned") or 0),
        matched=int_of(entity.get("matched") or 0),
        unauthorized=int_of(entity.get("unauthorized") or 0),
        turn=int_of(entity.get("turn") or 0),
        waits=int(entity.get("waits") or 0),
        reason=entity.get("reason"),
    )


class TableBackfillStore:
    def __init__(self, service: TableServiceClient, *, retention: timedelta = DEFAULT_RETENTION) -> None:
        """``retention``: how long a finished backfill stays readable after its last change."""
        self._table = service.get_table_client(BACKFILLS_TABLE)
        self._retention = retention

    async def create(self, backfill: Backfill) -> str | None:
        marker = {"PartitionKey": backfill.subscription_id, "RowKey": SCANNING_KEY, "backfill": backfill.id}
        totals = {"PartitionKey": backfill.subscription_id, "RowKey": _totals_key(backfill.id)} | {
            final.value: int64(0) for final in Final
        }
        try:
            await submit_transaction(
                self._table, [("create", marker), ("create", _entity(backfill)), ("create", totals)]
            )
        except TableTransactionError as error:
            if str(getattr(error, "error_code", "") or "") != "EntityAlreadyExists":
                raise
            scanning = await get_or_none(self._table, backfill.subscription_id, SCANNING_KEY)
            if scanning is None:  # it finished in between: try once more
                return await self.create(backfill)
            return str(scanning["backfill"])
        return None

    async def get(self, subscription_id: str, backfill_id: str) -> tuple[Backfill, str] | None:
        entity = await get_or_none(self._table, subscription_id, _job_key(backfill_id))
        if entity is None:
            return None
        etag = etag_of(entity)
        assert etag is not None  # every entity read from the service has one
        return _backfill(entity), etag

    async def save(self, backfill: Backfill, etag: str, *, release: bool = False) -> bool:
        if release:
            scanning = await get_or_none(self._table, backfill.subscription_id, SCANNING_KEY)
            if scanning is not None and scanning.get("backfill") == backfill.id:
                replace_job = ("update", _entity(backfill), _if_unchanged(etag))
                drop_marker = ("delete", {"PartitionKey": backfill.subscription_id, "RowKey": SCANNING_KEY})
                try:
                    await submit_transaction(self._table, [replace_job, drop_marker])
                except TableTransactionError as error:
                    if str(getattr(error, "error_code", "") or "") in (
                        "UpdateConditionNotSatisfied",
                        "ConditionNotMet",
                        "ResourceNotFound",  # deleted with its subscription
                    ):
                        return False
                    raise
                return True
        return await put_if_unchanged(self._table, _entity(backfill), etag) is not None

    async def outcomes(self, subscription_id: str, backfill_id: str) -> Outcomes:
        return _outcomes(await get_or_none(self._table, subscription_id, _totals_key(backfill_id)))

    async def record_outcomes(
        self, subscription_id: str, backfill_id: str, message_key: str, finals: Mapping[str, Final]
    ) -> None:
        row_key = _outcome_prefix(backfill_id) + escape_key(message_key)
        for _ in range(_CONFLICT_RETRIES):
            totals, entity = await asyncio.gather(
                get_or_none(self._table, subscription_id, _totals_key(backfill_id)),
                get_or_none(self._table, subscription_id, row_key),
            )
            if totals is None:
                return  # the backfill was deleted (with its subscription, or by retention)
            stored: Mapping[str, Any] = entity if entity is not None else {}
            counted = set(str(stored.get("ids") or "").split(",")) - {""}
            new = {delivery: final for delivery, final in finals.items() if delivery not in counted}
            if not new:
                return
            added = Outcomes(
                *(
                    sum(1 for final in new.values() if final is kind)
                    for kind in (Final.PUSHED, Final.FAILED, Final.DROPPED)
                )
            )
            total = _outcomes(totals) + added
            totals_row = {
                "PartitionKey": subscription_id,
                "RowKey": _totals_key(backfill_id),
                Final.PUSHED.value: int64(total.pushed),
                Final.FAILED.value: int64(total.failed),
                Final.DROPPED.value: int64(total.dropped),
            }
            # A message holds at most 256 deliveries: their ids fit one string property (32 K characters).
            ids_row = {"PartitionKey": subscription_id, "RowKey": row_key, "ids": ",".join(sorted(counted | set(new)))}
            etag, totals_etag = etag_of(entity) if entity is not None else None, etag_of(totals)
            assert totals_etag is not None  # read from the service
            operations: list[Any] = [
                ("create", ids_row) if etag is None else ("update", ids_row, _if_unchanged(etag)),
                ("update", totals_row, _if_unchanged(totals_etag)),
            ]
            try:
                await submit_transaction(self._table, operations)
                return
            except TableTransactionError as error:
                if str(getattr(error, "error_code", "") or "") not in _LOST_RACE:
                    raise
            await asyncio.sleep(random.uniform(0.01, 0.1))  # another settle of this backfill wrote first
        raise RuntimeError(f"could not record the outcomes of backfill {backfill_id}: too many concurrent writers")

    async def forget(self, subscription_id: str) -> None:
        """Every backfill of a deleted subscription, with what it counted: its whole partition."""
        # The totals first: a settle writes its counted set only together with its totals, so once they
        # are gone nothing more is written, and the listing that follows finds every row that is left.
        await self._delete(subscription_id, await self._keys(subscription_id, "t:"))
        await self._delete(subscription_id, await self._keys(subscription_id))

    async def _keys(self, subscription_id: str, prefix: str = "") -> list[str]:
        return [
            str(entity["RowKey"])
            async for entity in self._table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": subscription_id}, select=["RowKey"]
            )
            if str(entity["RowKey"]).startswith(prefix)
        ]

    async def expire(self, now: datetime) -> int:
        """Deletes the backfills that ended (finished scanning, or stopped) longer than the retention ago,
        with their counts; returns how many. A running scan is kept however old."""
        cutoff = now - self._retention
        expired = [
            (str(entity["PartitionKey"]), str(entity["RowKey"])[len("b:") :])
            async for entity in self._table.query_entities(
                "RowKey ge @low and RowKey lt @high and updated lt @cutoff",
                parameters={"low": "b:", "high": "b;", "cutoff": cutoff},
                select=["PartitionKey", "RowKey", "state", "scanDone"],
            )
            if entity.get("state") != BackfillState.RUNNING.value or entity.get("scanDone")
        ]
        for subscription_id, backfill_id in expired:
            prefix = _outcome_prefix(backfill_id)
            messages = [
                str(entity["RowKey"])
                async for entity in self._table.query_entities(
                    "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
                    parameters={"pk": subscription_id, "low": prefix, "high": prefix[:-1] + ";"},
                    select=["RowKey"],
                )
            ]
            scanning = await get_or_none(self._table, subscription_id, SCANNING_KEY)
            marker = [SCANNING_KEY] if scanning is not None and scanning.get("backfill") == backfill_id else []
            # The record last: a sweep cut short finds it again next time.
            await self._delete(subscription_id, [_totals_key(backfill_id)])
            await self._delete(subscription_id, [*messages, *marker])
            await self._delete(subscription_id, [_job_key(backfill_id)])
        return len(expired)

    async def _delete(self, subscription_id: str, row_keys: list[str]) -> None:
        for start in range(0, len(row_keys), TRANSACTION_OPERATIONS):
            chunk = row_keys[start : start + TRANSACTION_OPERATIONS]
            try:
                await submit_transaction(
                    self._table, [("delete", {"PartitionKey": subscription_id, "RowKey": k}) for k in chunk]
                )
            except TableTransactionError as error:
                if str(getattr(error, "error_code", "") or "") != "ResourceNotFound":
                    raise
                for key in chunk:  # another sweep or delete got some first: the rest one by one
                    await self._table.delete_entity(subscription_id, key)


def _outcomes(totals: Mapping[str, Any] | None) -> Outcomes:
    if totals is None:
        return Outcomes()
    return Outcomes(*(int_of(totals.get(final.value) or 0) for final in (Final.PUSHED, Final.FAILED, Final.DROPPED)))


def _if_unchanged(etag: str) -> dict[str, Any]:
    return {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified}
