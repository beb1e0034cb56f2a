"""A change to a subscription (``PATCH /api/v1/subscriptions/{id}``) and how it applies.

``SubscriptionChange.applied_to`` is the one place a change becomes a new subscription value: the
service applies it to the stored subscription under the row's ETag (so a concurrent validation or
health update is never overwritten), and the checks run on its result, as a create checks its
request. A new field of the PATCH body is a field here and a line in ``applied_to``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from shared.notifications.event_orders import NotificationSpec
from shared.subscriptions.model import Ordering, Status, Subscription
from shared.subscriptions.targets import Destination, EndpointAuthentication

NOTIFICATION_NOT_ORDERED = (
    "ordering 'subject' orders pushes; a notification subscription's orders are not pushed in order, so it "
    "takes ordering 'none'"
)
# ``Filters`` fields a change may set; None clears an optional one (resource and includeSubunits are never None).
FILTER_FIELDS = frozenset({"resource", "source", "subject", "alternativesubject", "type", "include_subunits"})


class ChangeRefused(ValueError):
    """The change cannot apply to this subscription (the message says why); nothing was changed."""


@dataclass(frozen=True)
class SubscriptionChange:
    """What to change; a field left None is kept as it is."""

    # The ``Filters`` fields to set, by name; a value of None clears that filter.
    filters: Mapping[str, Any] = field(default_factory=dict)
    endpoint: str | None = None
    ordering: Ordering | None = None
    notification: NotificationSpec | None = None
    # A new broker destination (replaced as a whole), and authentication: replaced as a whole when
    # ``authentication_given``, removed when that is None (shared/subscriptions/targets.py).
    destination: Destination | None = None
    authentication: EndpointAuthentication | None = None
    authentication_given: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.filters) - FILTER_FIELDS
        if unknown:
            raise ValueError(f"not filters: {sorted(unknown)}")

    def applied_to(self, current: Subscription) -> Subscription:
        """``current`` with the change made. A new endpoint makes it pending: it is validated before it
        receives anything. Raises ``ChangeRefused``, or ``FilterProblem`` for filters that cannot match."""
        if self.endpoint is not None and current.notification is not None:
            raise ChangeRefused("a notification subscription has no endPoint; create a webhook subscription instead")
        if self.endpoint is not None and current.destination is not None:
            raise ChangeRefused("a subscription to a broker destination has no endPoint to change")
        if self.notification is not None and current.notification is None:
            raise ChangeRefused(
                "a webhook subscription has no notification; create a notification subscription instead"
            )
        if self.destination is not None and current.destination is None:
            raise ChangeRefused("only a subscription to a broker destination has a destination to change")
        if self.ordering is Ordering.SUBJECT and current.notification is not None:
            raise ChangeRefused(NOTIFICATION_NOT_ORDERED)
        if self.authentication_given and (current.destination is not None or current.notification is not None):
            raise ChangeRefused(
                "authentication applies to a webhook (endPoint); Herald publishes to a destination with its own identity"
            )
        changed = current
        if self.filters:
            changed = replace(changed, filters=replace(current.filters, **self.filters))
        if self.endpoint is not None and self.endpoint != current.endpoint:
            # Whatever its status, the new endpoint has to accept the validation event first; what the old
            # one granted or failed says nothing about it.
            changed = _retargeted(replace(changed, endpoint=self.endpoint), current)
        if self.destination is not None and self.destination != current.destination:
            # A new broker is validated as a new endpoint is: its first publish makes it active again.
            changed = _retargeted(
                replace(changed, destination=self.destination, endpoint=self.destination.address), current
            )
        if self.authentication_given:
            changed = replace(changed, authentication=self.authentication)
        if self.ordering is not None:
            changed = replace(changed, ordering=self.ordering)
        if self.notification is not None:
            changed = replace(changed, notification=self.notification)
        return changed


def _retargeted(changed: Subscription, current: Subscription) -> Subscription:
    """Pending until the new target accepts the validation event, its health starting afresh. One that
    was receiving events stays matched meanwhile (``revalidating``): what is published until then
    waits for the new target (or its retry horizon), and none of it goes to the old one."""
    return replace(
        changed,
        status=Status.PENDING,
        revalidating=current.matched,
        disabled_reason=None,
        failing_since=None,
        circuit_opened_at=None,
        allowed_rate=None,
        validation_code_hash=None,  # the old target's code validates nothing now (409, not 400)
    )
