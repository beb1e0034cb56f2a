"""The records every notification use case works on, built once by the composition root and handed to each."""

from __future__ import annotations

from dataclasses import dataclass

from shared.clock import Clock
from shared.notifications.config import NotificationConfig
from shared.notifications.ports import NotificationStore, OrderStore
from shared.notifications.status_events import StatusOutbox


@dataclass(frozen=True)
class OrderRecords:
    """The order and notification stores, the clock and settings they are read with, and the outbox that
    announces a notification's change of status."""

    orders: OrderStore
    notifications: NotificationStore
    clock: Clock
    config: NotificationConfig
    outbox: StatusOutbox


class OrderUseCase:
    """A use case over the order records: it reads them as its own attributes and takes, beside them,
    only the collaborators that are its own."""

    def __init__(self, records: OrderRecords) -> None:
        self.orders = records.orders
        self.notifications = records.notifications
        self.clock = records.clock
        self.config = records.config
        self.outbox = records.outbox
