"""Test doubles of Herald's ports for time and queues (the real adapters are tested elsewhere)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from shared.messaging import OutgoingMessage


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.moment = start or datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.moment

    def advance(self, delta: timedelta) -> None:
        self.moment += delta

    def set(self, moment: datetime) -> None:
        self.moment = moment


class RecordingBus:
    """Keeps what was sent, per queue, in order: a delayed message can be inspected and released."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, OutgoingMessage]] = []

    async def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        self.sent.extend((queue, message) for message in messages)

    def take(self, queue: str) -> list[OutgoingMessage]:
        taken = [m for q, m in self.sent if q == queue]
        self.sent = [(q, m) for q, m in self.sent if q != queue]
        return taken

    async def close(self) -> None:
        pass
