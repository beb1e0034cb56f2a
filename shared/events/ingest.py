"""Ingestion from the Event Grid custom topic: its CloudEvents become published events.

The topic delivers each CloudEvent (CloudEvents 1.0 schema) to the Service Bus queue
``events-eventgrid``, one event a message, its body the JSON exactly as the publisher sent it. Herald
decodes and validates that body with the same code as a structured-mode ``POST /api/v1/events``,
so every attribute (the ``resource`` extension, a ``time`` with any UTC offset) is taken and stored
as sent. The Functions Event Grid binding is not in the path: its CloudEvent converter accepts only
``Z``/``+00:00`` times and would refuse valid events before Herald saw them.

Ingested events are authorized like published ones. The topic publishes as one identity, set in
``HERALD_EVENTGRID_PUBLISHER``: each event's resource policy must list it as a publisher (the same
check ``POST /api/v1/events`` makes), and Herald's own resources (``urn:herald:*``) are refused to
it as to every outside publisher. With the setting unset every event is refused, with an error log:
anyone allowed to send to the topic would otherwise write into every resource.

A refused event (invalid, unauthorized, or reusing a published key) is logged with the reason,
counted (``herald.ingest.refused``) and dropped: a redelivery would carry the same bytes and be
refused the same way, and the trigger binding completes messages itself, so it cannot dead-letter
one. A failure to store or to decide (storage or the policy decision point unavailable) raises
instead, so Service Bus redelivers the message and, after ``maxDeliveryCount`` tries, dead-letters it.
"""

from __future__ import annotations

import logging
from datetime import datetime

from shared.clock import Clock
from shared.events.model import EventInvalid, EventTooLarge, MalformedJSON, decode_json, validate_event
from shared.events.publishing import EventPublisher
from shared.identity.authorization import Authorizer
from shared.identity.parties import InvalidIdentity, PartyKind, parse_party
from shared.telemetry import record_ingest_refused

log = logging.getLogger(__name__)

EVENTGRID_QUEUE = "events-eventgrid"
PUBLISHER_SETTING = "HERALD_EVENTGRID_PUBLISHER"


async def ingest(
    body: bytes,
    received_at: datetime,
    *,
    publisher: EventPublisher,
    authorizer: Authorizer,
    identity: str | None,
) -> bool:
    """Publish one routed structured-mode event as ``identity``; False when it was refused (logged
    with the reason and counted)."""
    if identity is None:
        log.error("event from Event Grid refused: %s is not set, so ingestion refuses every event", PUBLISHER_SETTING)
        record_ingest_refused("unconfigured")
        return False
    try:
        event = validate_event(decode_json(body), received_at=received_at)
    except (MalformedJSON, EventInvalid, EventTooLarge) as error:
        event_id = getattr(error, "event_id", None)
        log.warning("event from Event Grid refused", extra={"event_id": event_id, "reason": str(error)})
        record_ingest_refused("invalid")
        return False
    if await authorizer.refused_publishing(identity, [event.resource]):
        log.warning(
            "event from Event Grid refused",
            extra={
                "event_id": event.id,
                "resource": event.resource,
                "reason": f"{identity} may not publish events for {event.resource}",
            },
        )
        record_ingest_refused("forbidden")
        return False
    result = await publisher.publish([event])
    if result.conflicts:
        log.warning(
            "event from Event Grid reuses a published (source, id) with other content",
            extra={"event_id": event.id, "source": event.source},
        )
        record_ingest_refused("conflict")
        return False
    return True


def publisher_identity(raw: str | None) -> str | None:
    """The identity ``HERALD_EVENTGRID_PUBLISHER`` names, if it is an org: or system: identity; else None
    (logged), so whatever publishes as it is refused rather than guessed."""
    if not raw:
        return None
    try:
        party = parse_party(raw)
    except InvalidIdentity as error:
        log.error("%s is not an identity (%s); nothing is published as it", PUBLISHER_SETTING, error)
        return None
    if party.kind not in (PartyKind.ORG, PartyKind.SYSTEM):
        log.error(
            "%s must be an org: or system: identity, not %s; nothing is published as it", PUBLISHER_SETTING, party.kind
        )
        return None
    return str(party)


class EventGridIngest:
    """Receives the events the Event Grid custom topic routes to ``events-eventgrid``, one a message."""

    def __init__(self, publisher: EventPublisher, authorizer: Authorizer, identity: str | None, clock: Clock) -> None:
        self._publisher = publisher
        self._authorizer = authorizer
        self._identity = publisher_identity(identity)  # who the topic publishes as
        self._clock = clock

    async def receive(self, body: bytes) -> bool:
        """Publish one routed event; False when it was refused (logged with the reason and counted)."""
        return await ingest(
            body, self._clock.now(), publisher=self._publisher, authorizer=self._authorizer, identity=self._identity
        )
