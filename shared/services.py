"""The use cases, as the API and the triggers reach them: one typed object, built by ``shared.composition``.

It names what Herald does, not how it is stored: its fields are use cases, and routes and triggers reach
storage only through them (``tests/architecture`` keeps this module from importing a store, client or
route). A route depends on it through ``shared.api.dependencies``; a trigger asks
``shared.composition.root.services()`` for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.config import Settings
from shared.events.ingest import EventGridIngest
from shared.events.maintenance import EventLogUpkeep
from shared.events.publishing import EventPublisher
from shared.events.reading import EventReader
from shared.identity.accounts import MappedIdentities
from shared.identity.authorization import Access
from shared.identity.rate_limit import LeasedTokenBuckets
from shared.identity.tokens import TokenValidator
from shared.notifications.service import Notifications
from shared.subscriptions.backfill import BackfillPushes, Backfills
from shared.subscriptions.fanout import Fanout
from shared.subscriptions.notification_target import EventNotifier
from shared.subscriptions.ordering import OrderedLanes
from shared.subscriptions.outbound import OutboundWorker
from shared.subscriptions.service import SubscriptionService
from shared.subscriptions.validation import SubscriptionValidation


@dataclass
class Services:
    settings: Settings
    # identity: who is calling, what they may do, how fast they may publish
    tokens: TokenValidator
    identities: MappedIdentities  # accounts mapped to Herald identities (HERALD_AUTH_IDENTITIES=mapped)
    access: Access
    publish_limiter: LeasedTokenBuckets
    # events: the log and its timers
    publisher: EventPublisher
    reader: EventReader
    eventgrid_ingest: EventGridIngest
    event_upkeep: EventLogUpkeep
    # subscriptions: matching, pushing, and the notify stage (deliveries that become orders)
    subscriptions: SubscriptionService
    validation: SubscriptionValidation  # the handshake that makes a subscription active
    fanout: Fanout
    outbound: OutboundWorker
    notifier: EventNotifier
    # backfill: stored events of a range pushed to a subscription, and those pushes
    backfills: Backfills
    backfill_pushes: BackfillPushes
    # ordered push per subject: the lanes' sweep (fan-out and the outbound worker use them too)
    ordered_lanes: OrderedLanes
    # notifications: orders, sending, reports, expiry and their administration
    notifications: Notifications
