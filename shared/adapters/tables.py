"""Azure Table Storage access shared by Herald's table adapters (Azure and Azurite alike)."""

from __future__ import annotations

import contextlib
import re
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import EdmType, EntityProperty
from azure.data.tables.aio import TableClient, TableServiceClient

from shared.config import Settings

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


def int64(value: int) -> EntityProperty:
    return EntityProperty(value, EdmType.INT64)


# Storage is reached directly (Azurite on loopback; the storage account from the Functions network),
# never through an HTTP proxy named in the environment. azure-core's default looks the proxy and
# .netrc up again for every request, which cost 10-20 % of devhost's CPU under load.
STORAGE_CLIENT_OPTIONS: dict[str, Any] = {"use_env_settings": False}


def table_service(settings: Settings) -> TableServiceClient:
    """A Table service client: a connection string locally, the managed identity in Azure."""
    storage = settings.storage
    if storage.connection_string:
        return TableServiceClient.from_connection_string(settings.storage_connection_string, **STORAGE_CLIENT_OPTIONS)
    endpoint = storage.endpoint("tableServiceUri")
    if endpoint is None:
        raise RuntimeError("set HeraldStorage (connection string) or HeraldStorage__tableServiceUri")
    from shared.adapters.identity import credential_for

    return TableServiceClient(endpoint=endpoint, credential=credential_for(storage), **STORAGE_CLIENT_OPTIONS)


async def ensure_tables(service: TableServiceClient, names: tuple[str, ...]) -> None:
    for name in names:
        with contextlib.suppress(ResourceExistsError):
            await service.create_table(name)
