"""Per-endpoint protection so a slow or broken endpoint never delays the healthy ones.

For each endpoint (its URL without the query) a process keeps:
- a concurrency cap that grows with proven health (slow start: two requests in flight for an
  endpoint not yet heard from, one more per success, up to the maximum) and drops to ONE after
  a failure (probation), so a hanging endpoint holds at most two worker slots, even before its
  first timeout;
- a circuit breaker: after consecutive failures it opens and deliveries are deferred to the retry
  queue without an attempt, then one trial request half-opens it;
- the request rate the endpoint granted in the CloudEvents abuse-protection handshake.
A delivery that cannot go now is deferred (a delayed message), never waited for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

_PROBATION_SECONDS = 2.0  # how soon a failing endpoint's next delivery is tried


def endpoint_of(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}{parts.path or '/'}"


@dataclass
class _State:
    in_flight: int = 0
    consecutive_successes: int = 0
    consecutive_failures: int = 0
    open_until: float = 0.0
    opened: int = 0
    tokens: float = 0.0
    refilled_at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Admission:
    admitted: bool
    retry_in: float = 0.0
    reason: str = ""
    # At its in-flight cap while healthy: worth waiting for a request in flight to finish.
    busy: bool = False


class EndpointGuard:
    def __init__(
        self,
        *,
        max_in_flight: int = 64,
        failure_threshold: int = 5,
        open_seconds: float = 30.0,
        max_open_seconds: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_in_flight = max_in_flight
        self._threshold = failure_threshold
        self._open_seconds = open_seconds
        self._max_open_seconds = max_open_seconds
        self._clock = clock
        self._states: dict[str, _State] = {}

    def _state(self, endpoint: str) -> _State:
        state = self._states.get(endpoint)
        if state is None:
            state = self._states[endpoint] = _State()
        return state

    def admit(self, url: str, allowed_rate_per_minute: int | None = None) -> Admission:
        """Take a slot for one request now, or say how long to defer it."""
        now = self._clock()
        state = self._state(endpoint_of(url))
        if state.open_until > now:
            return Admission(False, state.open_until - now, "circuit open")
        cap = 1 if state.consecutive_failures else min(self._max_in_flight, 2 + state.consecutive_successes)
        if state.in_flight >= cap:
            if state.consecutive_failures:
                return Admission(False, _PROBATION_SECONDS, "endpoint on probation")
            return Admission(False, 0.5, "endpoint busy", busy=True)
        if allowed_rate_per_minute is not None:
            rate = allowed_rate_per_minute / 60.0
            state.tokens = min(
                float(allowed_rate_per_minute) / 60.0 + 1.0, state.tokens + (now - state.refilled_at) * rate
            )
            state.refilled_at = now
            if state.tokens < 1.0:
                return Admission(False, max((1.0 - state.tokens) / rate, 0.1), "rate granted by the endpoint")
            state.tokens -= 1.0
        state.in_flight += 1
        return Admission(True)

    def retry_in(self, url: str) -> float:
        """Seconds until a deferred delivery is worth trying again: the rest of an open circuit, else
        the probation interval."""
        remaining = self._state(endpoint_of(url)).open_until - self._clock()
        return remaining if remaining > 0 else _PROBATION_SECONDS

    def release(self, url: str, *, success: bool) -> None:
        state = self._state(endpoint_of(url))
        state.in_flight = max(0, state.in_flight - 1)
        if success:
            state.consecutive_successes += 1
            state.consecutive_failures = 0
            state.opened = 0
            state.open_until = 0.0
            return
        state.consecutive_successes = 0
        state.consecutive_failures += 1
        if state.consecutive_failures >= self._threshold:
            # Each re-open after a failed trial waits longer, up to the maximum.
            state.open_until = self._clock() + min(self._open_seconds * 2**state.opened, self._max_open_seconds)
            state.opened += 1
