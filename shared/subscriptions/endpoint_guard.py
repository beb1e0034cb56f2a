"""Per-endpoint protection so a slow or broken endpoint never delays the healthy ones.

For each endpoint (its URL without the query) a process keeps:
- a concurrency cap that grows with proven health: two requests in flight for an endpoint not yet
  heard from, one more per prompt answer to a request that was out while more wanted to go, up to
  the maximum. Traffic that never needed the cap does not raise it, so the cap is what the endpoint
  has actually been trusted with at once;
- a latency bound: an endpoint is slow when an answer, or a request still out, has taken longer
  than the patience. A slow endpoint's cap is at most its share, a quarter of the process's
  handlers. An outbound message holds its handler until each of its requests is answered, so a
  request still unanswered after the patience may go on waiting only while its endpoint holds no
  more than its share of such requests, and all endpoints together no more than half the
  handlers; any other is cut (and retried as after a timeout). So however large an endpoint's cap
  had grown before it turned slow, after the patience it holds at most its share of handlers, and
  slow endpoints together at most half;
- probation: after a failure the cap is ONE, so a hanging endpoint holds at most two worker slots
  (its slow-start cap) before its first timeout, and one after it;
- a circuit breaker: after consecutive failures it opens and deliveries are deferred to the retry
  queue without an attempt, then one trial request half-opens it;
- the request rate the endpoint granted in the CloudEvents abuse-protection handshake.
And per host (scheme, host and port) a cap on the requests in flight to all its endpoints together,
so that endpoints sharing a receiver do not flood it. The HTTP client has no cap of its own: a
request admitted here never waits for a connection, and the patience measures the endpoint.
A delivery that cannot go now is deferred (a delayed message); none waits longer than the patience.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

_PROBATION_SECONDS = 2.0  # how soon a failing endpoint's next delivery is tried
PATIENCE_SECONDS = 2.0  # an endpoint slower than this to answer is slow
HANDLERS = 16  # host.json extensions.serviceBus.maxConcurrentCalls, the Functions default
_SLOW_SHARE = 4  # a slow endpoint may hold one handler in this many
_SLOW_BUDGET = 2  # slow endpoints together may hold one handler in this many
_LATENCY_WEIGHT = 0.5  # of the newest answer in the endpoint's latency average
_SLOT_WAIT_ANSWERS = 4  # a delivery waits for a busy endpoint's slot about this many of its answers
_MIN_SLOT_WAIT_SECONDS = 0.5
MAX_IN_FLIGHT_PER_HOST = 256  # of one process, to all endpoints of one host together


def host_of(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def endpoint_of(url: str) -> str:
    return f"{host_of(url)}{urlsplit(url).path or '/'}"


@dataclass
class _State:
    cap: int = 2
    # Requests in flight: ticket -> when admitted. Those out while the cap turned one away (it limited
    # the endpoint) raise the cap when answered promptly.
    requests: dict[int, float] = field(default_factory=dict)
    limited: set[int] = field(default_factory=set)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)  # each woken by a release, in turn
    latency: float = 0.0  # seconds, a moving average of the answers (timeouts included)
    consecutive_failures: int = 0
    open_until: float = 0.0
    opened: int = 0
    tokens: float = 0.0
    refilled_at: float = field(default_factory=time.monotonic)

    def expected_latency(self, now: float) -> float:
        """What the next answer will likely take: the average, or longer while a request is still out."""
        oldest = min(self.requests.values(), default=now)
        return max(self.latency, now - oldest)


@dataclass
class _Host:
    in_flight: int = 0
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


def _wake_one(waiters: list[asyncio.Future[None]]) -> None:
    """One slot came free: wake the waiter waiting longest (those gone already are skipped)."""
    while waiters:
        waiter = waiters.pop(0)
        if not waiter.done():
            waiter.set_result(None)
            return


@dataclass(frozen=True)
class Admission:
    admitted: bool
    retry_in: float = 0.0
    reason: str = ""
    # At its in-flight cap while prompt: a slot frees soon, worth waiting ``wait`` seconds for.
    busy: bool = False
    wait: float = 0.0
    ticket: int = 0  # hand it back to ``release``


class EndpointGuard:
    def __init__(
        self,
        *,
        max_in_flight: int = 64,
        max_in_flight_per_host: int = MAX_IN_FLIGHT_PER_HOST,
        handlers: int = HANDLERS,
        patience_seconds: float = PATIENCE_SECONDS,
        failure_threshold: int = 5,
        open_seconds: float = 30.0,
        max_open_seconds: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_in_flight = max_in_flight
        self._host_cap = max_in_flight_per_host
        self._hosts: dict[str, _Host] = {}
        self._share = max(1, handlers // _SLOW_SHARE)
        self._budget = max(1, handlers // _SLOW_BUDGET)
        self._held: set[int] = set()  # tickets of requests waited for past the patience
        self.patience = patience_seconds
        self._threshold = failure_threshold
        self._open_seconds = open_seconds
        self._max_open_seconds = max_open_seconds
        self._clock = clock
        self._states: dict[str, _State] = {}
        self._tickets = itertools.count(1)

    def _state(self, endpoint: str) -> _State:
        state = self._states.get(endpoint)
        if state is None:
            state = self._states[endpoint] = _State()
        return state

    def admit(self, url: str, allowed_rate_per_minute: int | None = None) -> Admission:
        """Take a slot for one request now, or say how long to defer it."""
        now = self._clock()
        state = self._state(endpoint_of(url))
        host = self._host(url)
        if state.open_until > now:
            return Admission(False, state.open_until - now, "circuit open")
        expected = state.expected_latency(now)
        slow = expected > self.patience
        cap = state.cap if not slow else min(state.cap, self._share)
        if state.consecutive_failures:
            cap = 1
        if len(state.requests) >= cap:
            if state.consecutive_failures:
                return Admission(False, _PROBATION_SECONDS, "endpoint on probation")
            if slow:
                # Its requests free a slot about one answer from now.
                return Admission(False, max(_PROBATION_SECONDS, expected), "endpoint slow")
            state.limited.update(state.requests)
            return Admission(False, 0.5, "endpoint busy", busy=True, wait=self._slot_wait(state))
        if host.in_flight >= self._host_cap:
            # The host's other endpoints free a slot as they answer; the endpoint itself is not judged.
            return Admission(False, 0.5, "host busy", busy=True, wait=self._slot_wait(state))
        if allowed_rate_per_minute is not None:
            rate = allowed_rate_per_minute / 60.0
            state.tokens = min(
                float(allowed_rate_per_minute) / 60.0 + 1.0, state.tokens + (now - state.refilled_at) * rate
            )
            state.refilled_at = now
            if state.tokens < 1.0:
                return Admission(False, max((1.0 - state.tokens) / rate, 0.1), "rate granted by the endpoint")
            state.tokens -= 1.0
        ticket = next(self._tickets)
        state.requests[ticket] = now
        host.in_flight += 1
        return Admission(True, ticket=ticket)

    def _slot_wait(self, state: _State) -> float:
        """A few of the endpoint's answers' time: a prompt endpoint frees a slot well within it, one
        that has just turned slow holds the waiting handler briefly, and never beyond the patience."""
        return min(self.patience, max(_MIN_SLOT_WAIT_SECONDS, _SLOT_WAIT_ANSWERS * state.latency))

    def _host(self, url: str) -> _Host:
        key = host_of(url)
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host()
        return host

    def retry_in(self, url: str) -> float:
        """Seconds until a deferred delivery is worth trying again: the rest of an open circuit, else
        the probation interval."""
        remaining = self._state(endpoint_of(url)).open_until - self._clock()
        return remaining if remaining > 0 else _PROBATION_SECONDS

    def circuit_open(self, url: str) -> bool:
        """Whether this process's breaker for the endpoint has opened and no request has succeeded since
        (open, or waiting for its trial request to succeed)."""
        state = self._states.get(endpoint_of(url))
        return state is not None and state.consecutive_failures >= self._threshold

    def may_hold(self, url: str, ticket: int) -> bool:
        """Whether an admitted request still unanswered after the patience may go on holding its
        handler: within its endpoint's share and the budget of all slow requests. Asked once per
        request, at the patience; a yes holds until ``release``."""
        state = self._state(endpoint_of(url))
        held_here = sum(1 for other in state.requests if other in self._held)
        if held_here >= self._share or len(self._held) >= self._budget:
            return False
        self._held.add(ticket)
        return True

    def released(self, url: str) -> asyncio.Future[None]:
        """Done when a request to the endpoint gives its slot back to this waiter (waiters are woken one
        per slot, in turn): what a delivery turned away as busy waits for (with a timeout; cancel it
        then)."""
        state = self._state(endpoint_of(url))
        host = self._host(url)
        state.waiters = [waiter for waiter in state.waiters if not waiter.done()]
        host.waiters = [waiter for waiter in host.waiters if not waiter.done()]
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Woken by a slot of its endpoint or, when the host was full, of any endpoint of the host.
        state.waiters.append(waiter)
        host.waiters.append(waiter)
        return waiter

    def release(self, url: str, ticket: int, *, success: bool | None, latency_seconds: float = 0.0) -> None:
        """Give back an admitted request's slot. ``success`` None: nothing reached the endpoint (its
        address was refused, the event was gone), so its health is not judged by it."""
        state = self._state(endpoint_of(url))
        _wake_one(state.waiters)
        if ticket in state.requests:  # a request of the host's in flight (each ticket counts once)
            host = self._host(url)
            if host.in_flight >= self._host_cap:
                _wake_one(host.waiters)
            host.in_flight -= 1
        state.requests.pop(ticket, None)
        self._held.discard(ticket)
        limited = ticket in state.limited
        state.limited.discard(ticket)
        if success is None:
            return
        state.latency = (
            latency_seconds
            if not state.latency
            else _LATENCY_WEIGHT * latency_seconds + (1 - _LATENCY_WEIGHT) * state.latency
        )
        if success:
            state.consecutive_failures = 0
            state.opened = 0
            state.open_until = 0.0
            if latency_seconds > self.patience:
                state.cap = max(1, min(state.cap, self._share))
            elif limited:
                state.cap = min(self._max_in_flight, state.cap + 1)
            return
        state.cap = 2
        state.consecutive_failures += 1
        if state.consecutive_failures >= self._threshold:
            # Each re-open after a failed trial waits longer, up to the maximum.
            state.open_until = self._clock() + min(self._open_seconds * 2**state.opened, self._max_open_seconds)
            state.opened += 1
