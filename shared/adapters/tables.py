"""Azure Table Storage access shared by Herald's table adapters (Azure and Azurite alike)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.core.pipeline.transport import AioHttpTransport
from azure.data.tables import EdmType, EntityProperty, TableEntity, UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient

from shared.config import Settings

TRANSACTION_OPERATIONS = 100  # Azure's limit per entity-group transaction

# Characters a PartitionKey or RowKey may not hold; percent-encoded (as is '%' itself).
_FORBIDDEN_IN_KEY = re.compile(r"[/\\#?%\x00-\x1f\x7f-\x9f]")


def escape_key(value: str) -> str:
    return _FORBIDDEN_IN_KEY.sub(lambda match: f"%{ord(match.group()):02X}", value)


async def delete_existing(table: TableClient, partition_key: str, row_key: str) -> bool:
    """Deletes an entity; False when there was none. The SDK's delete succeeds on a missing entity
    too, so an API that answers 404 for nothing to delete has to look first."""
    try:
        await table.get_entity(partition_key, row_key, select=["RowKey"])
    except ResourceNotFoundError:
        return False
    await table.delete_entity(partition_key, row_key)
    return True


async def get_or_none(
    table: TableClient, partition_key: str, row_key: str, *, select: list[str] | None = None
) -> TableEntity | None:
    """The entity, or None when there is none."""
    try:
        if select is None:
            return await table.get_entity(partition_key, row_key)
        return await table.get_entity(partition_key, row_key, select=select)
    except ResourceNotFoundError:
        return None


async def put_if_unchanged(table: TableClient, entity: dict[str, Any], etag: str | None) -> str | None:
    """Optimistic concurrency: create the entity when ``etag`` is None, else replace it only if it
    still has that ETag. Returns the new ETag, or None when another writer came first."""
    try:
        if etag is None:
            written = await table.create_entity(entity)
        else:
            written = await table.update_entity(
                entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
            )
    except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
        return None
    new_etag: str = written["etag"]
    return new_etag


def int64(value: int) -> EntityProperty:
    return EntityProperty(value, EdmType.INT64)


def int_of(value: Any) -> int:
    """An integer property as read back: a 64-bit one arrives wrapped in an ``EntityProperty``."""
    return int(value.value if hasattr(value, "value") else value)


# A pooled connection idle this long is closed by Herald before the server can close it. Node's HTTP
# server, and so Azurite, closes keep-alive connections idle for 5 s; aiohttp keeps them for 15 s, so a
# request could be written to a socket the server was closing ("connection reset by peer"), and every
# retry could draw another such socket from the pool: one publish waited 7 s behind them and failed.
STORAGE_IDLE_SECONDS = 4.0


class StorageTransport(AioHttpTransport):  # type: ignore[misc]  # re-exported lazily: Any to mypy
    """azure-core's aiohttp transport, with a session whose pool drops connections idle for
    ``STORAGE_IDLE_SECONDS``. Storage is reached directly (Azurite on loopback; the storage account
    from the Functions network), never through an HTTP proxy named in the environment: aiohttp's
    ``trust_env`` looks the proxy and .netrc up again for every request (10-20 % of devhost's CPU)."""

    session: aiohttp.ClientSession | None

    async def open(self) -> None:
        # The session is made here, inside the running loop, as azure-core makes its own.
        if self.session is None and self._session_owner and not self._has_been_opened:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(keepalive_timeout=STORAGE_IDLE_SECONDS),
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
            )
        await super().open()


# The storage SDK's own timeouts (seconds), which azure-storage-queue sets only on a transport it builds
# itself; azure-core's default for a transport given to a client is 300 s for each.
STORAGE_CONNECT_SECONDS = 20
STORAGE_READ_SECONDS = 60


def storage_client_options() -> dict[str, Any]:
    """Options for a Table or queue service client: a transport of its own (a client closes its transport)."""
    transport = StorageTransport(
        use_env_settings=False, connection_timeout=STORAGE_CONNECT_SECONDS, read_timeout=STORAGE_READ_SECONDS
    )
    return {"use_env_settings": False, "transport": transport}


def table_service(settings: Settings) -> TableServiceClient:
    """A Table service client: a connection string locally, the managed identity in Azure."""
    storage = settings.storage
    if storage.connection_string:
        return TableServiceClient.from_connection_string(settings.storage_connection_string, **storage_client_options())
    endpoint = storage.endpoint("tableServiceUri")
    if endpoint is None:
        raise RuntimeError("set HeraldStorage (connection string) or HeraldStorage__tableServiceUri")
    from shared.adapters.identity import credential_for

    return TableServiceClient(endpoint=endpoint, credential=credential_for(storage), **storage_client_options())


async def ensure_tables(service: TableServiceClient, names: tuple[str, ...]) -> None:
    for name in names:
        with contextlib.suppress(ResourceExistsError):
            await service.create_table(name)


def time_key(moment: datetime) -> str:
    """A time as a key that sorts as the times do (UTC, to the microsecond)."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S%f")


def etag_of(entity: Any) -> str | None:
    """The ETag of an entity as read."""
    metadata = getattr(entity, "metadata", None) or {}
    etag: str | None = metadata.get("etag")
    return etag


PACKED_CHUNK_BYTES = 60 * 1024  # a binary property holds at most 64 KiB


def pack(payload: bytes, prefix: str, *, chunk: int = PACKED_CHUNK_BYTES) -> dict[str, bytes]:
    """A payload larger than one property as binary properties ``<prefix>00``, ``<prefix>01`` ..."""
    return {
        f"{prefix}{index:02d}": payload[start : start + chunk]
        for index, start in enumerate(range(0, len(payload), chunk))
    }


def unpack(entity: dict[str, Any], prefix: str) -> bytes:
    chunks = sorted(
        (name, value) for name, value in entity.items() if name.startswith(prefix) and name[len(prefix) :].isdigit()
    )
    return b"".join(bytes(value) for _, value in chunks)


POINT_READ_CONCURRENCY = 32


async def query_keys(table: TableClient, partition: str, row_keys: Sequence[str]) -> list[Any]:
    """Entities of one partition by row key, as concurrent point reads. A filter OR-ing row keys
    would save calls, but the service answers it by scanning the partition (an order of 10,000
    notifications, a registry of millions of people), and Azurite by scanning the table."""
    slots = asyncio.Semaphore(POINT_READ_CONCURRENCY)

    async def read(key: str) -> Any:
        async with slots:
            return await get_or_none(table, partition, key)

    found = await asyncio.gather(*(read(key) for key in dict.fromkeys(row_keys)))
    return [entity for entity in found if entity is not None]
