"""Creates Herald's tables and queues where nothing else does (devhost, tests; Bicep does it in Azure)."""

from __future__ import annotations

from shared.adapters.storage_queue_bus import StorageQueueBus, dead_letter_queue_name
from shared.adapters.tables import ensure_tables, table_service
from shared.config import BusKind, Settings
from shared.container import TABLES
from shared.queues import ALL_QUEUES


async def provision(settings: Settings) -> None:
    service = table_service(settings)
    try:
        await ensure_tables(service, TABLES)
    finally:
        await service.close()
    if settings.bus is BusKind.STORAGE_QUEUE:
        bus = StorageQueueBus(settings.storage_connection_string)
        try:
            await bus.ensure_queues([name for queue in ALL_QUEUES for name in (queue, dead_letter_queue_name(queue))])
        finally:
            await bus.close()
