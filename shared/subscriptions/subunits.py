"""Main units of organisations, for subscriptions with ``includeSubunits``.

An event about ``org:<subunit>`` also reaches the subscriptions to ``org:<main unit>`` that include
subunits (Altinn Events matches them the same way). Fan-out asks this for the main units of the
organisations its events are about; the contact registry knows them
(``Organization.parent_organization_number``). Answers are kept a few minutes (the registry is not
asked once per event) for a bounded number of organisations; an organisation the registry does not
know has no main unit. A registry that fails raises: the inbound message is retried rather than
matched without the main units' subscriptions.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from shared.notifications.ports import ContactRegistry
from shared.subscriptions.model import ORGANISATION_SUBJECT

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
        self._ttl = ttl_seconds
        self._size = size
        self._clock = clock
        self._known: OrderedDict[str, tuple[float, str | None]] = OrderedDict()  # number -> (read at, main unit)

    async def of(self, subjects: Iterable[str]) -> dict[str, str]:
        """Event subject -> its main unit's subject (``org:<number>``), for the subjects that are subunits."""
        numbers = {match.group(1) for subject in subjects if (match := ORGANISATION_SUBJECT.match(subject))}
        if not numbers:
            return {}
        now = self._clock()
        missing = [n for n in sorted(numbers) if (known := self._known.get(n)) is None or now - known[0] >= self._ttl]
        if missing:
            found = await self._registry.organizations(missing)
            for number in missing:
                organization = found.get(number)
                self._known[number] = (now, organization.parent_organization_number if organization else None)
                self._known.move_to_end(number)
            while len(self._known) > self._size:
                self._known.popitem(last=False)
        parents: dict[str, str] = {}
        for number in numbers:
            known = self._known.get(number)
            parent = known[1] if known is not None else None
            if parent and parent != number:
                parents[f"org:{number}"] = f"org:{parent}"
        return parents
