"""Backfills on Table Storage (``backfills``): one partition per subscription, holding

- ``b:<backfill id>``                the backfill: range, cursor, state and scan counts,
- ``p:<backfill id>:<message key>``  what became of its deliveries in one outbound message (the ids
  counted, so a message settled again after a crash counts each delivery once),
- ``~scanning``                      which backfill of the subscription is scanning now (at most one).

A backfill and the scanning marker are created, and the marker removed with the backfill's last
scanning write, in one entity-group transaction, so two requests can never both start one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableServiceClient

from shared.adapters.table_transactions import submit_transaction
from shared.adapters.tables import etag_of, get_or_none, int64, int_of, put_if_unchanged
from shared.events.log import Position
from shared.subscriptions.backfill import Backfill, BackfillState, Outcomes
from shared.subscriptions.ports import Final

BACKFILLS_TABLE = "backfills"
SCANNING_KEY = "~scanning"
_CONFLICT_RETRIES = 20


def _job_key(backfill_id: str) -> str:
    return f"b:{backfill_id}"


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
    def __init__(self, service: TableServiceClient) -> None:
        self._table = service.get_table_client(BACKFILLS_TABLE)

    async def create(self, backfill: Backfill) -> str | None:
        marker = {"PartitionKey": backfill.subscription_id, "RowKey": SCANNING_KEY, "backfill": backfill.id}
        try:
            await submit_transaction(self._table, [("create", marker), ("create", _entity(backfill))])
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
                    ):
                        return False
                    raise
                return True
        return await put_if_unchanged(self._table, _entity(backfill), etag) is not None

    async def outcomes(self, subscription_id: str, backfill_id: str) -> Outcomes:
        prefix = _outcome_prefix(backfill_id)
        total = Outcomes()
        async for entity in self._table.query_entities(
            "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high",
            parameters={"pk": subscription_id, "low": prefix, "high": prefix[:-1] + ";"},
            select=["pushed", "failed", "dropped"],
        ):
            total += Outcomes(
                int(entity.get("pushed") or 0), int(entity.get("failed") or 0), int(entity.get("dropped") or 0)
            )
        return total

    async def record_outcomes(
        self, subscription_id: str, backfill_id: str, message_key: str, finals: Mapping[str, Final]
    ) -> None:
        row_key = _outcome_prefix(backfill_id) + message_key
        for _ in range(_CONFLICT_RETRIES):
            entity = await get_or_none(self._table, subscription_id, row_key)
            stored: Mapping[str, Any] = entity if entity is not None else {}
            counted = set(str(stored.get("ids") or "").split(",")) - {""}
            new = {delivery: final for delivery, final in finals.items() if delivery not in counted}
            if not new:
                return
            counts = {final.value: int(stored.get(final.value) or 0) for final in Final}
            for final in new.values():
                counts[final.value] += 1
            # A message holds at most 256 deliveries: their ids fit one string property (32 K characters).
            ids = ",".join(sorted(counted | set(new)))
            written = {"PartitionKey": subscription_id, "RowKey": row_key, "ids": ids, **counts}
            if await put_if_unchanged(self._table, written, etag_of(entity) if entity is not None else None):
                return
            await asyncio.sleep(0.05)  # another settle of the same message wrote first: merge with it
        raise RuntimeError(f"could not record the outcomes of backfill {backfill_id}: too many concurrent writers")


def _if_unchanged(etag: str) -> dict[str, Any]:
    return {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified}
