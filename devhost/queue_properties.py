"""Each Service Bus queue's properties, from ``infra/service-bus-queues.json``.

That file is the single declaration of Herald's queues: ``infra/main.bicep`` deploys it with
``loadJsonContent`` and devhost emulates the same lock duration, delivery limit and duplicate
detection locally. Values are checked against Service Bus's own limits, so a declaration that
the deployment would reject does not run locally either.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from devhost.durations import parse_iso8601_duration

QUEUES_FILE = Path("infra") / "service-bus-queues.json"

# Service Bus limits (Microsoft.ServiceBus/namespaces/queues): a lock lasts 5 s to 5 min; the
# duplicate detection history keeps 20 s to 7 days.
MIN_LOCK = timedelta(seconds=5)
MAX_LOCK = timedelta(minutes=5)
MIN_DUPLICATE_WINDOW = timedelta(seconds=20)
MAX_DUPLICATE_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class QueueProperties:
    """What devhost emulates of one queue; the defaults are Service Bus's for a queue created bare."""

    lock_duration: timedelta = timedelta(minutes=1)
    max_delivery_count: int = 10
    requires_duplicate_detection: bool = False
    duplicate_detection_window: timedelta = timedelta(minutes=10)

    @property
    def lock_seconds(self) -> int:
        # Storage queue visibility timeouts are whole seconds; round up so a lock is never shorter.
        return max(1, math.ceil(self.lock_duration.total_seconds()))

    def describe(self) -> str:
        dedup = (
            f", duplicate detection {int(self.duplicate_detection_window.total_seconds())}s"
            if self.requires_duplicate_detection
            else ""
        )
        return f"lock {self.lock_seconds}s, {self.max_delivery_count} deliveries{dedup}"


def load_queue_properties(path: Path) -> dict[str, QueueProperties]:
    """Queue name -> properties, from a JSON array of ARM queue property objects with a ``name``."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(document, list):
        raise ValueError(f"{path}: expected a JSON array of queues")
    queues: dict[str, QueueProperties] = {}
    for position, entry in enumerate(document):
        name = entry.get("name") if isinstance(entry, Mapping) else None
        if not isinstance(name, str) or not name:
            raise ValueError(f"{path}: entry {position} has no name")
        if name in queues:
            raise ValueError(f"{path}: queue {name!r} is declared twice")
        try:
            queues[name] = _properties(entry)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: queue {name!r}: {exc}") from exc
    return queues


def _properties(entry: Mapping[str, Any]) -> QueueProperties:
    defaults = QueueProperties()
    lock = _duration(entry, "lockDuration", defaults.lock_duration)
    if not MIN_LOCK <= lock <= MAX_LOCK:
        raise ValueError(f"lockDuration {entry['lockDuration']!r} is outside Service Bus's PT5S..PT5M")
    window = _duration(entry, "duplicateDetectionHistoryTimeWindow", defaults.duplicate_detection_window)
    if not MIN_DUPLICATE_WINDOW <= window <= MAX_DUPLICATE_WINDOW:
        raise ValueError(
            f"duplicateDetectionHistoryTimeWindow {entry['duplicateDetectionHistoryTimeWindow']!r} "
            "is outside Service Bus's PT20S..P7D"
        )
    deliveries = entry.get("maxDeliveryCount", defaults.max_delivery_count)
    if not isinstance(deliveries, int) or isinstance(deliveries, bool) or deliveries < 1:
        raise ValueError(f"maxDeliveryCount {deliveries!r} must be a whole number of at least 1")
    dedup = entry.get("requiresDuplicateDetection", defaults.requires_duplicate_detection)
    if not isinstance(dedup, bool):
        raise ValueError(f"requiresDuplicateDetection {dedup!r} must be true or false")
    return QueueProperties(
        lock_duration=lock,
        max_delivery_count=deliveries,
        requires_duplicate_detection=dedup,
        duplicate_detection_window=window,
    )


def _duration(entry: Mapping[str, Any], key: str, default: timedelta) -> timedelta:
    value = entry.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ValueError(f"{key} {value!r} must be an ISO 8601 duration string")
    return parse_iso8601_duration(value)
