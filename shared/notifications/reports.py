"""Applying delivery reports: every report source reads its own format at the edge and calls ``apply``.

The readers of the gateways' formats (ACS through Event Grid, the SMS gateway's callback) are
injected by the composition root, so the trigger and the route hand over what they received in one call.
A report naming a reference Herald has not stored yet raises ReportNotMatched (the source retries);
after the bounded attempts it is parked. An Event Grid report Herald cannot read is parked at once and
counted; a gateway callback Herald cannot read is refused (the gateway sees a 400).
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.notifications.model import Channel, Notification, Order, Status
from shared.notifications.ports import DeadReportStore, DeliveryReport, EventReportReader, GatewayReportReader
from shared.notifications.records import OrderRecords, OrderUseCase
from shared.notifications.status import moved, recorded
from shared.telemetry import record_report_refused

log = logging.getLogger(__name__)


class ReportNotMatched(Exception):
    """A delivery report names a reference Herald has not stored yet: retry it (bounded)."""


class ReportsUnreadable(Exception):
    """A gateway callback whose reports Herald cannot read (the gateway's reader refused them)."""


@dataclass
class GatewayOutcome:
    """What a gateway callback's reports came to: counts per outcome, and how many are not matched yet."""

    outcomes: dict[str, int] = field(default_factory=lambda: {"applied": 0, "unchanged": 0, "parked": 0})
    unmatched: int = 0


class DeliveryReports(OrderUseCase):
    def __init__(
        self,
        records: OrderRecords,
        *,
        dead_reports: DeadReportStore,
        read_event: EventReportReader,
        read_gateway: GatewayReportReader,
    ) -> None:
        super().__init__(records)
        self.dead_reports = dead_reports
        self._read_event = read_event
        self._read_gateway = read_gateway
        # Orders named by recent delivery reports (see _order_for_report).
        self._report_orders: OrderedDict[tuple[str, str], Order] = OrderedDict()

    async def from_event_grid(self, channel: Channel, event_id: str | None, data: Any, *, cloud_event: bool) -> str:
        """An Event Grid delivery-report event: its outcome, or ``refused`` when it is in another schema
        (``cloud_event``) or its data is not an object."""
        if cloud_event:
            reason = "CLOUDEVENTS_SCHEMA"
        elif data is not None and not isinstance(data, Mapping):
            reason = "DATA_NOT_AN_OBJECT"
        else:
            return await self.apply(self._read_event(channel, data or {}))
        payload = json.dumps({"id": event_id, "data": data}, default=str)
        return await self._refuse(channel, event_id or "(none)", payload, reason)

    async def from_gateway(self, body: bytes, content_type: str) -> GatewayOutcome:
        """The SMS gateway's callback; raises ReportsUnreadable when its reports are not readable."""
        try:
            reports = self._read_gateway(body, content_type)
        except ValueError as error:  # UnicodeDecodeError too
            raise ReportsUnreadable(str(error)) from error
        result = GatewayOutcome()
        for report in reports:
            try:
                outcome = await self.apply(report)
            except ReportNotMatched:
                result.unmatched += 1
                continue
            result.outcomes[outcome] = result.outcomes.get(outcome, 0) + 1
        return result

    async def _refuse(self, channel: Channel, event_id: str, payload: str, reason: str) -> str:
        """Parks a delivery-report event Herald cannot read (under its event id), logged and counted:
        a redelivery would be the same event, so the trigger returns and Event Grid stops retrying."""
        log.warning("delivery report refused", extra={"channel": channel.value, "event_id": event_id, "reason": reason})
        record_report_refused(channel.value, reason)
        await self.dead_reports.park(channel, f"event:{event_id}", payload, self.clock.now(), reason)
        return "refused"

    async def apply(self, report: DeliveryReport) -> str:
        """Applies one delivery report: ``applied``, ``unchanged`` or ``parked``; raises ReportNotMatched."""
        channel, reference, now = report.channel, report.reference, self.clock.now()
        if reference is None:
            await self.dead_reports.park(channel, "(none)", report.payload, now, "NO_MESSAGE_ID")
            return "parked"
        found = await self.notifications.find_reference(channel, reference)
        if found is None:
            attempt = await self.dead_reports.record_attempt(
                channel,
                reference,
                report.payload,
                now,
                max_attempts=self.config.report_max_attempts,
                window=self.config.report_window,
            )
            if attempt.parked:
                log.warning("delivery report parked", extra={"reference": reference, "attempts": attempt.attempts})
                return "parked"
            raise ReportNotMatched(f"no {channel.value} notification with reference {reference} (yet)")
        creator, order_id, nid = found
        order = await self._order_for_report(creator, order_id)
        sending: list[Notification] = []

        def apply(n: Notification) -> Notification | None:
            if n.status is Status.SENDING:
                sending.append(n)  # sent, but its batch has not recorded the send result yet
                return None
            return moved(n, report.status, now, description=report.description)

        changed = await self.outbox.announced(
            await self.notifications.change(order_id, [nid], recorded(apply), announce=self.outbox.announce(order))
        )
        if sending:
            raise ReportNotMatched(
                f"{channel.value} notification {nid} is still being sent; report {reference} is early"
            )
        return "applied" if changed else "unchanged"

    async def _order_for_report(self, creator: str, order_id: str) -> Order | None:
        """The order a report's status event names. An order's reports arrive together and the fields the
        event takes from it (id, creator, sendersReference, resourceId) never change, so recent orders are
        kept: reading (and decoding every recipient of) a 10,000-recipient order once per report made
        applying an order's reports quadratic in its size."""
        key = (creator, order_id)
        order = self._report_orders.get(key)
        if order is not None:
            self._report_orders.move_to_end(key)
            return order
        order = await self.orders.get(creator, order_id, recipients=False)
        if order is not None:
            self._report_orders[key] = order
            while len(self._report_orders) > 32:
                self._report_orders.popitem(last=False)
        return order

    async def parked(self, channel: Channel | None = None) -> list[dict[str, object]]:
        """The dead reports: parked, never applied (for operators)."""
        return await self.dead_reports.parked(channel)
