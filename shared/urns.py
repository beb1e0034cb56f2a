"""Resource URNs: the shape every resource must have, and the URNs of Herald's own resources."""

from __future__ import annotations

import re

# RFC 8141's shape: ``urn:<namespace identifier>:<namespace-specific string>``. "urn" and the
# namespace identifier are case-insensitive; the text spells that out so JSON Schema (which has no
# flags) can use it as it stands.
URN_REGEX = r"^[Uu][Rr][Nn]:[A-Za-z0-9][A-Za-z0-9-]{0,30}[A-Za-z0-9]:[A-Za-z0-9()+,\-.:=@;$_!*'%/~&]+$"
URN_PATTERN = re.compile(URN_REGEX, re.IGNORECASE)

# Herald's own namespace: only Herald writes there.
HERALD_NAMESPACE = "urn:herald:"
# The resource (and the source) of the events Herald publishes about subscriptions.
SUBSCRIPTIONS_URN = "urn:herald:subscriptions"
# The resource (and the source) of the events Herald publishes about notifications.
NOTIFICATIONS_URN = "urn:herald:notifications"
