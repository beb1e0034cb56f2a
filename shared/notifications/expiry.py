"""Expiry: Failed_TTL for notifications still not final after their expiry time."""

from __future__ import annotations

from shared.notifications.model import Status
from shared.notifications.records import OrderUseCase
from shared.notifications.status import moved, recorded


class Expiry(OrderUseCase):
    async def expire(self, limit: int = 100) -> int:
        """Moves the due orders' overdue notifications to Failed_TTL; how many it moved."""
        now = self.clock.now()
        expired = 0
        for creator, order_id, at in await self.orders.expiring(now, limit):
            order = await self.orders.get(creator, order_id, recipients=False)
            notifications = await self.notifications.of_order(order_id)
            due = [n.id for n in notifications if not n.final and n.expiry is not None and n.expiry <= now]
            if due:
                changed = await self.notifications.change(
                    order_id,
                    due,
                    recorded(lambda n: moved(n, Status.FAILED_TTL, now, description="no final status in time")),
                    announce=self.outbox.announce(order),
                )
                expired += len(await self.outbox.announced(changed))
            later = [n.expiry for n in notifications if not n.final and n.expiry is not None and n.expiry > now]
            if later:
                await self.orders.watch_expiry(creator, order_id, min(later))
            await self.orders.unwatch_expiry(creator, order_id, at)
        return expired
