"""The notification feature as one object: the use cases the API and the triggers call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.notifications.config import NotificationSettings
from shared.notifications.contacts import ContactAdmin
from shared.notifications.expiry import Expiry
from shared.notifications.orders import OrderService
from shared.notifications.ports import Closable, ContactRegistry, DevOutbox
from shared.notifications.reports import DeliveryReports
from shared.notifications.senders import SenderGrantAdmin
from shared.notifications.sending import BatchSender
from shared.notifications.starting import OrderStarter
from shared.notifications.status_events import StatusOutbox


@dataclass
class Notifications:
    settings: NotificationSettings
    orders: OrderService
    starting: OrderStarter
    sending: BatchSender
    reports: DeliveryReports
    expiry: Expiry
    status_outbox: StatusOutbox
    sender_grants: SenderGrantAdmin  # what each orderer may send as (the admin API manages them)
    contacts: ContactAdmin  # the registry Herald keeps, loaded through the admin API
    # The registry lookups go to (the one above, or an external one); subscriptions find main units in it.
    registry: ContactRegistry | None = None
    dev_outbox: DevOutbox | None = None  # what the local sink captured, in local mode
    # Clients the composition root opened for the feature (the gateways' senders), closed with it.
    closables: Sequence[Closable] = field(default_factory=tuple)

    async def close(self) -> None:
        for closable in self.closables:
            await closable.close()
