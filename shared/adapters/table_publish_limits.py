"""Publishers' shared token buckets on Azure Table Storage (see shared/identity/rate_limit.py).

``publishlimits``: PK ``<publisher>`` RK ``bucket``: the bucket's ``level`` at ``at`` (seconds since
the epoch), replaced under its ETag by each slice an instance leases, so instances never lease the
same tokens twice.
"""

from __future__ import annotations

from azure.data.tables.aio import TableServiceClient

from shared.adapters.tables import escape_key, get_or_none, put_if_unchanged
from shared.identity.rate_limit import Bucket

PUBLISH_LIMITS_TABLE = "publishlimits"
_ROW = "bucket"


class TablePublishBuckets:
    def __init__(self, service: TableServiceClient) -> None:
        self._table = service.get_table_client(PUBLISH_LIMITS_TABLE)

    async def get(self, key: str) -> tuple[Bucket | None, str | None]:
        entity = await get_or_none(self._table, escape_key(key), _ROW)
        if entity is None:
            return None, None
        return Bucket(level=float(entity["level"]), at=float(entity["at"])), entity.metadata["etag"]

    async def put(self, key: str, bucket: Bucket, version: str | None) -> str | None:
        entity = {"PartitionKey": escape_key(key), "RowKey": _ROW, "level": bucket.level, "at": bucket.at}
        return await put_if_unchanged(self._table, entity, version)
