"""Main units of organisations, for subscriptions with ``includeSubunits``.

An event about ``org:<subunit>`` also reaches the subscriptions to ``org:<main unit>`` that include
subunits (Altinn Events matches them the same way). Fan-out and backfill ask this for the main units
of the organisations their events are about, and match with ``event_matches``; the contact registry knows them
(``Organization.parent_organization_number``). Answers are kept a few minutes (the registry is not
asked once per event) for a bounded number of organisations; an organisation the registry does not
know has no main unit. A registry that fails raises: the inbound message (or backfill turn) is retried
rather than matched without the main units' subscriptions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from shared.notifications.ports import ContactRegistry
from shared.subscriptions.model import ORGANISATION_SUBJECT, Filters
from shared.ttl_cache import TtlCache

MAIN_UNIT_TTL_SECONDS = 300.0
MAIN_UNITS_CACHED = 10_000


class MainUnits:
    def __init__(
        self,
        registry: ContactRegistry,
        *,
        ttl_seconds: float = MAIN_UNIT_TTL_SECONDS,
        size: int = MAIN_UNITS_CACHED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._known: TtlCache[str, str | None] = TtlCache(ttl_seconds, size=size, clock=clock)  # number -> main unit

    async def of(self, subjects: Iterable[str]) -> dict[str, str]:
        """Event subject -> its main unit's subject (``org:<number>``), for the subjects that are subunits."""
        numbers = {match.group(1) for subject in subjects if (match := ORGANISATION_SUBJECT.match(subject))}
        if not numbers:
            return {}

        async def main_units(missing: list[str]) -> dict[str, str | None]:
            found = await self._registry.organizations(missing)
            return {n: (o.parent_organization_number if (o := found.get(n)) else None) for n in missing}

        known = await self._known.get_many(sorted(numbers), main_units)
        return {f"org:{n}": f"org:{parent}" for n, parent in known.items() if parent and parent != n}


async def main_units_of(main_units: MainUnits | None, events: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Subject -> main unit of the events' subjects that are subunits; none without a registry."""
    if main_units is None:
        return {}
    return await main_units.of(subject for e in events if isinstance(subject := e.get("subject"), str))


def main_unit_of(attributes: Mapping[str, Any], parents: Mapping[str, str]) -> str | None:
    subject = attributes.get("subject")
    return parents.get(subject) if isinstance(subject, str) else None


def event_matches(filters: Filters, attributes: Mapping[str, Any], parents: Mapping[str, str]) -> bool:
    """Whether an event goes to a subscription with these filters, an event about a subunit included
    when they include subunits; ``parents`` from ``main_units_of``. Fan-out and backfill both decide here."""
    return filters.matches(attributes, main_unit_of(attributes, parents))
