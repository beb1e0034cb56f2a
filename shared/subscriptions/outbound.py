"""The outbound stage: push each delivery of a message, then log, retry, dead-letter and track health.

All deliveries of a message run concurrently; each is guarded per endpoint (see
``endpoint_guard``). Results are written in bulk: the attempts in a few delivery-log
transactions, retries as delayed messages grouped by due time, dead letters per subscription.
With the attempts, each settle marks its deliveries settled for the message they came in, so a
message delivered again after a crash or a lost lock pushes only what was not settled.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from shared.clock import Clock
from shared.events.log import EventLog
from shared.identity.authorization import Action, Authorizer, event_request
from shared.messaging import Bus
from shared.subscriptions.delivery import (
    EXPIRED,
    REFUSED,
    Decision,
    Delivery,
    RetryPolicy,
    Verdict,
    defer,
    delivery_id,
)
from shared.subscriptions.endpoint_guard import EndpointGuard
from shared.subscriptions.health import SubscriptionHealth
from shared.subscriptions.messages import MAX_DELIVERIES_PER_MESSAGE, RETRY_QUEUE, delivery_message
from shared.subscriptions.model import SUBSCRIPTION_CACHE_SECONDS, Status, Subscription
from shared.subscriptions.ordering import OrderedLanes
from shared.subscriptions.ports import (
    Attempt,
    DeadLetter,
    DeadLetterStore,
    DeliveryLog,
    DestinationClient,
    Final,
    Settled,
    SettleListener,
    SubscriptionStore,
    TokenSource,
    WebhookClient,
    WebhookResponse,
)
from shared.subscriptions.push import Pusher
from shared.subscriptions.stats import DeliveryStats
from shared.subscriptions.targets import DestinationKind
from shared.ttl_cache import TtlCache

log = logging.getLogger(__name__)

_RANGE_READ_FROM = 3  # ids of one partition in a message from which one range query beats point reads
_SETTLE_WAVE_SECONDS = 0.2  # endpoints finishing within this of each other are settled together
_ROWS_CACHED = 256  # log rows the worker keeps between messages (not a limit on a message's deliveries)
_PENDING_WAIT_SECONDS = 30.0  # a delivery to a subscription being validated is looked at again after this


@dataclass(frozen=True)
class _Result:
    delivery: Delivery
    subscription: Subscription | None
    attempt: Attempt | None = None
    decision: Decision | None = None
    deferred_until: datetime | None = None


class _RowCache:
    """Recently read log rows: at high fan-out many messages push the same event."""

    def __init__(self, size: int = _ROWS_CACHED) -> None:
        self._rows: OrderedDict[tuple[str, int], Sequence[bytes]] = OrderedDict()
        self._size = size

    def get(self, key: tuple[str, int]) -> Sequence[bytes] | None:
        rows = self._rows.get(key)
        if rows is not None:
            self._rows.move_to_end(key)
        return rows

    def put(self, key: tuple[str, int], events: Sequence[bytes]) -> None:
        self._rows[key] = events
        while len(self._rows) > self._size:
            self._rows.popitem(last=False)


class OutboundWorker:
    def __init__(
        self,
        *,
        store: SubscriptionStore,
        event_log: EventLog,
        delivery_log: DeliveryLog,
        dead_letters: DeadLetterStore,
        bus: Bus,
        client: WebhookClient,
        guard: EndpointGuard,
        health: SubscriptionHealth,
        clock: Clock,
        policy: RetryPolicy,
        timeout_seconds: float,
        origin: str,
        authorizer: Authorizer,
        trace: Callable[[], dict[str, str]] = dict,
        retry_queue: str = RETRY_QUEUE,
        listener: SettleListener | None = None,
        in_order: bool = False,
        stats: DeliveryStats | None = None,
        destinations: Mapping[DestinationKind, DestinationClient] | None = None,
        tokens: TokenSource | None = None,
        lanes: OrderedLanes | None = None,
    ) -> None:
        """``retry_queue``: where retries and deferrals go (backfill keeps its own off the live path);
        ``listener``: told of final outcomes (backfill progress); ``in_order``: a message's pushes to an
        endpoint go one after another, in the message's order (backfill), not as many at once as the guard admits,
        and a failed one's retry carries the rest behind it, so none overtakes it."""
        self._retry_queue = retry_queue
        self._listener = listener
        self._lanes = lanes  # ``ordering: subject``: a lane's next entry goes once its head is settled for good
        self._in_order = in_order
        self._stats = stats  # per-subscription figures for GET …/health
        self._authorizer = authorizer
        self._store = store
        self._event_log = event_log
        self._delivery_log = delivery_log
        self._dead_letters = dead_letters
        self._bus = bus
        self._guard = guard
        self._health = health
        self._clock = clock
        self._policy = policy
        # ``destinations`` and ``tokens``: brokers and gateway tokens (shared/subscriptions/targets.py).
        self._pusher = Pusher(
            client=client,
            clock=clock,
            policy=policy,
            origin=origin,
            timeout_seconds=timeout_seconds,
            destinations=destinations,
            tokens=tokens,
        )
        self._trace = trace
        self._rows = _RowCache()
        self._subscriptions: TtlCache[tuple[str, str], Subscription | None] = TtlCache(SUBSCRIPTION_CACHE_SECONDS)

    async def handle(
        self, deliveries: Sequence[Delivery], *, message_id: str | None = None, redelivered: bool = False
    ) -> None:
        """Push the deliveries of one queue message. With its ``message_id``, each settle records which
        deliveries it handed on; a ``redelivered`` message (its worker died, or its lock was lost)
        pushes only the others, so a crash re-sends what was in flight, not the whole message."""
        if message_id is not None and redelivered:
            deliveries = await self._not_yet_settled(message_id, deliveries)
            if not deliveries:
                return
        # Taken from the retry queue (only such a delivery has a first attempt), counted when settled: a
        # redelivered message skips what was settled, so none is counted twice. A lane head the sweep sent
        # again was counted when its retry was taken, if it was.
        taken = {_delivery_id(d): first for d in deliveries if (first := d.first_attempt_at) and not d.resent}
        events = await self._events(deliveries)
        subscriptions = await self._subscriptions_for(deliveries)
        by_endpoint: dict[str, list[tuple[Delivery, Subscription]]] = defaultdict(list)
        results: list[_Result] = []
        active: list[tuple[Delivery, Subscription]] = []
        waiting: list[tuple[Delivery, Subscription]] = []
        for delivery in deliveries:
            subscription = subscriptions.get((delivery.subscription_key, delivery.subscription_id))
            if subscription is not None and subscription.status is Status.PENDING:
                # Its (new) endpoint is being validated: nothing goes there before; it waits, not lost.
                waiting.append((delivery, subscription))
            elif subscription is None or subscription.status is not Status.ACTIVE:
                results.append(_Result(delivery, subscription))  # deleted or disabled since it matched
            else:
                active.append((delivery, subscription))
        if waiting:
            results.extend(self._deferred(waiting, _PENDING_WAIT_SECONDS, _attributes_of(waiting, events)))
        attributes = _attributes_of(active, events)
        allowed = await self._authorized(active, attributes)
        for (delivery, subscription), permitted in zip(active, allowed, strict=True):
            if permitted:
                by_endpoint[subscription.endpoint].append((delivery, subscription))
            else:
                results.append(self._refused(delivery, subscription, attributes))
        await self._settle_in_waves(
            results,
            [
                asyncio.create_task(self._deliver_to(endpoint, group, events, attributes))
                for endpoint, group in by_endpoint.items()
            ],
            message_id,
            taken,
        )

    async def _not_yet_settled(self, message_id: str, deliveries: Sequence[Delivery]) -> list[Delivery]:
        settled = await self._delivery_log.settled(message_id, self._clock.now())
        pending = [d for d in deliveries if _delivery_id(d) not in settled]
        if len(pending) < len(deliveries):
            log.info(
                "outbound message seen before: skipping deliveries already settled",
                extra={"message_id": message_id, "skipped": len(deliveries) - len(pending)},
            )
        return pending

    async def _settle_in_waves(
        self,
        ready: list[_Result],
        groups: list[asyncio.Task[list[_Result]]],
        message_id: str | None,
        taken: Mapping[str, datetime],
    ) -> None:
        """Settle each endpoint's results soon after they are known, not when the slowest endpoint of
        the message is done: a hanging endpoint must not hold the healthy ones' retries, deferrals,
        log entries and health. Groups finishing close together share one settle (and its writes)."""
        pending: set[asyncio.Task[list[_Result]]] = set(groups)
        results = ready
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if pending:
                    more, pending = await asyncio.wait(pending, timeout=_SETTLE_WAVE_SECONDS)
                    done |= more
                for task in done:
                    results.extend(task.result())
                await self._settle(results, message_id, taken)
                results = []
            if results:
                await self._settle(results, message_id, taken)
        finally:
            for task in pending:
                task.cancel()

    async def _authorized(self, active: Sequence[tuple[Delivery, Subscription]], attributes: _Attributes) -> list[bool]:
        """Each push is authorized again: the consumer may still receive this event about this party."""
        return await self._authorizer.allowed(
            [event_request(s.consumer, attributes[_position(d)], Action.SUBSCRIBE) for d, s in active]
        )

    def _refused(self, delivery: Delivery, subscription: Subscription, attributes: _Attributes) -> _Result:
        """Not sent: logged in the delivery log so the consumer sees why."""
        attempt = Attempt(
            subscription_id=subscription.id,
            delivery_id=delivery_id(subscription.id, delivery.resource, delivery.seq, delivery.index),
            event_id=_event_id(attributes[_position(delivery)]),
            attempt=delivery.attempt,
            at=self._clock.now(),
            status_code=None,
            latency_ms=0,
            outcome="unauthorized",
            error="the consumer is not authorized for this event; it was not sent",
        )
        return _Result(delivery, subscription, attempt)

    async def _deliver_to(
        self,
        endpoint: str,
        group: list[tuple[Delivery, Subscription]],
        events: dict[tuple[str, int], Sequence[bytes]],
        attributes: _Attributes,
    ) -> list[_Result]:
        """One endpoint's deliveries of this message: as many at once as the guard admits. When the
        endpoint is prompt but at its cap, wait for a slot as long as the guard says (a few of its
        answers, never beyond its patience); otherwise (slow, circuit open, probation, granted rate,
        or no slot in that time) defer the rest to the retry queue. Once an attempt of this message to the endpoint has failed, the rest is
        deferred too; ``in_order``, to when the failed one is retried, behind it in the same retry message,
        so nothing overtakes it (after a dead one, the rest goes on after the guard's pause). So a message
        waits at most one timeout for a broken endpoint and one answer for a slow one, however many of its deliveries go there, and the guard's cap bounds how many
        messages wait on one endpoint at once."""
        loop = asyncio.get_running_loop()
        results: list[_Result] = []
        pending = list(group)
        running: set[asyncio.Task[_Result]] = set()
        failed = False
        resume_at: datetime | None = None  # in order: when the failed push is retried, and the rest behind it
        give_up: float | None = None  # while the endpoint answers nothing: when to defer instead
        try:
            while pending or running:
                slot: asyncio.Future[None] | None = None
                while pending:
                    if failed:
                        results.extend(
                            self._deferred(pending, self._guard.retry_in(endpoint), attributes, until=resume_at)
                        )
                        pending = []
                        break
                    if self._in_order and running:
                        break  # the next one starts when this one is answered
                    delivery, subscription = pending[0]
                    admission = self._guard.admit(endpoint, subscription.allowed_rate)
                    if admission.admitted:
                        give_up = None
                        pending.pop(0)
                        running.add(
                            asyncio.create_task(
                                self._attempt(delivery, subscription, events, attributes, admission.ticket)
                            )
                        )
                    elif admission.busy and (give_up is None or loop.time() < give_up):
                        give_up = give_up or loop.time() + admission.wait
                        slot = self._guard.released(endpoint)
                        break
                    else:
                        results.extend(self._deferred(pending, admission.retry_in, attributes))
                        pending = []
                if slot is None and not running:
                    break
                # Until a request (this message's or another's) gives its slot back: the endpoint is
                # answering, so waiting on goes on. If it answers nothing within the wait, the rest is
                # deferred (by then the guard may call it slow).
                waited: set[asyncio.Future[Any]] = {*running, slot} if slot is not None else set(running)
                try:
                    done, _ = await asyncio.wait(
                        waited,
                        # Only a wait for a slot gives up; this message's own requests are waited for.
                        timeout=None if slot is None or give_up is None else max(0.0, give_up - loop.time()),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    if slot is not None:
                        slot.cancel()  # a wake it got anyway is used by the admission that follows
                if done:
                    give_up = None
                for task in [t for t in running if t in done]:
                    running.discard(task)
                    result = task.result()
                    failure = (
                        result.decision is not None
                        and result.decision.verdict is not Verdict.DELIVERED
                        and result.decision.outcome != REFUSED  # the address, not the endpoint's health
                        and not _refused_by_subject(result.delivery, result.attempt)
                    )
                    failed = failed or failure
                    if failure and self._in_order and result.decision is not None:
                        resume_at = result.decision.next_attempt_at  # None when it is dead: the rest may go
                    results.append(result)
        finally:
            for task in running:  # cancelled (the host stops): no request outlives its handler
                task.cancel()
        return results

    def _deferred(
        self,
        pending: Sequence[tuple[Delivery, Subscription]],
        seconds: float,
        attributes: _Attributes,
        *,
        until: datetime | None = None,
    ) -> list[_Result]:
        """Deliveries that were not attempted now: queued again without counting an attempt (in ``seconds``,
        or at ``until`` when given), or, past their horizon, dead without another attempt."""
        now = self._clock.now()
        due = until if until is not None else now + timedelta(seconds=seconds)
        results: list[_Result] = []
        for delivery, subscription in pending:
            decision = defer(due=due, first_attempt_at=delivery.first_attempt_at or now, policy=self._policy)
            if decision.verdict is Verdict.RETRY:
                results.append(_Result(delivery, subscription, deferred_until=due))
                continue
            made = replace(delivery, attempt=delivery.attempt - 1)  # the attempts actually made
            attempt = Attempt(
                subscription_id=subscription.id,
                delivery_id=delivery_id(subscription.id, delivery.resource, delivery.seq, delivery.index),
                event_id=_event_id(attributes[_position(delivery)]),
                attempt=made.attempt,
                at=now,
                status_code=None,
                latency_ms=0,
                outcome=decision.logged_as,
                error="not attempted again: the endpoint could not take it before the retry horizon ended",
            )
            results.append(_Result(made, subscription, attempt, decision))
        return results

    # ------------------------------------------------------------------------------ loading

    async def _events(self, deliveries: Sequence[Delivery]) -> dict[tuple[str, int], Sequence[bytes]]:
        wanted = {(d.resource, d.seq) for d in deliveries}
        found: dict[tuple[str, int], Sequence[bytes]] = {}
        missing: dict[str, list[int]] = defaultdict(list)
        for key in wanted:
            cached = self._rows.get(key)
            if cached is not None:
                found[key] = cached
            else:
                missing[key[0]].append(key[1])
        for resource, seqs in missing.items():
            for row in await self._event_log.rows_by_seq(resource, seqs):
                self._rows.put((resource, row.seq), row.events)
                found[(resource, row.seq)] = row.events
        return found

    async def _subscriptions_for(self, deliveries: Sequence[Delivery]) -> dict[tuple[str, str], Subscription | None]:
        """The deliveries' subscriptions, fresh within a few seconds. Fan-out emits each index partition's
        subscriptions in id order, so a message's ids of one partition are one range query, not one
        read per delivery: at high fan-out that keeps storage reads far below one per delivery."""

        async def load(index_key: str, ids: set[str]) -> list[tuple[tuple[str, str], Subscription | None]]:
            if len(ids) < _RANGE_READ_FROM:
                found = await asyncio.gather(*(self._store.get_by_key(index_key, i) for i in ids))
                return [((index_key, i), s) for i, s in zip(ids, found, strict=True)]
            in_range = {s.id: s for s in await self._store.id_range(index_key, min(ids), max(ids))}
            return [((index_key, i), in_range.get(i)) for i in ids]

        async def load_missing(keys: list[tuple[str, str]]) -> dict[tuple[str, str], Subscription | None]:
            missing: dict[str, set[str]] = defaultdict(set)
            for index_key, subscription_id in keys:
                missing[index_key].add(subscription_id)
            loaded = await asyncio.gather(*(load(index_key, ids) for index_key, ids in missing.items()))
            return dict(pair for pairs in loaded for pair in pairs)

        keys = ((delivery.subscription_key, delivery.subscription_id) for delivery in deliveries)
        return await self._subscriptions.get_many(keys, load_missing)

    # ----------------------------------------------------------------------------- delivering

    async def _attempt(
        self,
        delivery: Delivery,
        subscription: Subscription,
        events: dict[tuple[str, int], Sequence[bytes]],
        attributes: _Attributes,
        ticket: int,
    ) -> _Result:
        row = events.get((delivery.resource, delivery.seq))
        if row is None or delivery.index >= len(row):
            self._guard.release(subscription.endpoint, ticket, success=None)
            log.warning("event removed by retention before delivery", extra={"subscription": delivery.subscription_id})
            return _Result(delivery, None)
        message_id = delivery_id(subscription.id, delivery.resource, delivery.seq, delivery.index)

        async def within_patience(answer: Awaitable[WebhookResponse]) -> WebhookResponse:
            post = asyncio.ensure_future(answer)
            cut = False

            def at_patience() -> None:
                nonlocal cut
                if not post.done() and not self._guard.may_hold(subscription.endpoint, ticket):
                    cut = True
                    post.cancel()

            # A timer, not asyncio.wait: the answer is awaited directly (asyncio.wait's futures and
            # callbacks cost every push more than the check itself).
            timer = asyncio.get_running_loop().call_later(self._guard.patience, at_patience)
            try:
                try:
                    return await post
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if not cut or (task is not None and task.cancelling()):
                        raise
                # Slow, and its endpoint already holds its share of handlers: this handler is freed
                # for the other endpoints; the delivery is retried as after a timeout.
                return WebhookResponse(
                    status=None,
                    headers={},
                    latency_ms=round(self._guard.patience * 1000),
                    excerpt="",
                    error=f"no answer within {self._guard.patience:g} s while the endpoint held its share of "
                    "the handlers; the request was cut",
                )
            except BaseException:
                post.cancel()
                self._guard.release(subscription.endpoint, ticket, success=None)  # cancelled: nothing to judge
                raise
            finally:
                timer.cancel()

        pushed = await self._pusher.push(
            subscription,
            message_id,
            row[delivery.index],
            attempt=delivery.attempt,
            first_attempt_at=delivery.first_attempt_at,
            await_answer=within_patience,
            refusal_is_final=True,
        )
        response, decision = pushed.response, pushed.decision
        self._guard.release(
            subscription.endpoint,
            ticket,
            # A refused address says nothing about how the endpoint answers, nor does a stuck lane's refusal.
            success=None
            if response.refused is not None or _refused_by_subject(delivery, response.status)
            else decision.verdict is Verdict.DELIVERED,
            latency_seconds=response.latency_ms / 1000,
        )
        attempt = Attempt(
            subscription_id=subscription.id,
            delivery_id=message_id,
            event_id=_event_id(attributes[_position(delivery)]),
            attempt=delivery.attempt,
            at=pushed.at,
            status_code=response.status,
            latency_ms=response.latency_ms,
            outcome=decision.logged_as,
            error=response.error,
            response_excerpt=response.excerpt or None,
        )
        return _Result(replace(delivery, first_attempt_at=pushed.first_attempt_at), subscription, attempt, decision)

    # ------------------------------------------------------------------------------- settling

    async def _settle(self, results: Sequence[_Result], message_id: str | None, taken: Mapping[str, datetime]) -> None:
        from shared.telemetry import record_dead_letter, record_delivery

        attempts = [r.attempt for r in results if r.attempt is not None]
        retries: dict[datetime, list[Delivery]] = defaultdict(list)
        dead: list[DeadLetter] = []
        for result in results:
            if result.deferred_until is not None:
                # The 24 h horizon runs from when the delivery was first due, deferrals included.
                first_due = result.delivery.first_attempt_at or self._clock.now()
                retries[result.deferred_until.replace(microsecond=0)].append(
                    replace(result.delivery, first_attempt_at=first_due)
                )
                continue
            if result.decision is None or result.attempt is None:
                continue
            record_delivery(result.decision.verdict.value, result.attempt.latency_ms / 1000)
            if result.decision.verdict is Verdict.RETRY and result.decision.next_attempt_at is not None:
                first = result.delivery.first_attempt_at or result.attempt.at
                retries[result.decision.next_attempt_at.replace(microsecond=0)].append(
                    result.delivery.retried(result.delivery.attempt + 1, first)
                )
            elif result.decision.verdict is Verdict.DEAD:
                record_dead_letter("delivery")
                dead.append(
                    DeadLetter(
                        subscription_id=result.delivery.subscription_id,
                        delivery_id=result.attempt.delivery_id,
                        resource=result.delivery.resource,
                        seq=result.delivery.seq,
                        index=result.delivery.index,
                        event_id=result.attempt.event_id,
                        attempts=result.delivery.attempt,
                        first_attempt_at=result.delivery.first_attempt_at or result.attempt.at,
                        dead_at=result.attempt.at,
                        last_status=result.attempt.status_code,
                        last_error=result.attempt.error,
                    )
                )

        trace = self._trace()
        # Each settle is a send of its own: a delivery deferred again within the same second (an
        # endpoint busy for 0.5 s) has the same due second, and would otherwise share the id of the
        # message that brought it, which duplicate detection drops.
        settled_at = self._clock.now()
        for due, group in retries.items():
            for start in range(0, len(group), MAX_DELIVERIES_PER_MESSAGE):
                batch = group[start : start + MAX_DELIVERIES_PER_MESSAGE]
                await self._bus.send(
                    self._retry_queue, [delivery_message(batch, deliver_at=due, trace=trace, occasion=settled_at)]
                )
        if dead:
            await self._dead_letters.add(dead)
            # Before the settle is recorded: a message redelivered after a crash skips settled deliveries,
            # so published after it, the event would be lost. Its id is the letters': published again, it is
            # refused as a conflict (its data has a new time) and the first one stands.
            subscriptions = {r.subscription.id: r.subscription for r in results if r.subscription is not None}
            await self._health.exhausted([(s, d) for d in dead if (s := subscriptions.get(d.subscription_id))])
        # Marked settled last, with the attempts: a marked delivery's retry is queued and its dead letter kept.
        settled = (
            Settled(message_id, settled_at, [_delivery_id(r.delivery) for r in results])
            if message_id is not None and results
            else None
        )
        if self._listener is not None:  # before the settle is recorded: a crash between tells it again
            await self._listener.settled(message_id, [(r.delivery, f) for r in results if (f := _final(r))])
        if attempts or settled:
            await self._delivery_log.record(attempts, settled)
        if self._lanes is not None and any(r.delivery.lane for r in results):
            # After the record: a redelivered message then never pushes a lane's head again once its
            # successor was claimed. Retried heads keep their lanes waiting, with the due time noted.
            await self._lanes.settled(
                [r.delivery for r in results if r.delivery.lane and _final(r) is not None],
                [(d, due) for due, group in retries.items() for d in group if d.lane],
                trace,
            )
        await self._health.observe(
            [
                (r.subscription, r.decision.verdict)
                for r in results
                if r.subscription is not None and r.decision is not None
            ]
        )
        await self._health.circuits_opened(
            [
                r.subscription
                for r in results
                if r.subscription and _failed(r) and self._guard.circuit_open(r.subscription.endpoint)
            ]
        )
        if self._stats is not None:
            await self._stats.taken(
                (r.delivery.subscription_id, since)
                for r in results
                if (since := taken.get(_delivery_id(r.delivery))) is not None
            )
            await self._stats.settled(
                [(r.attempt, r.decision.verdict is Verdict.DELIVERED) for r in results if r.attempt and r.decision],
                [(d.subscription_id, d.first_attempt_at or settled_at) for group in retries.values() for d in group],
            )

    async def close(self) -> None:
        """Writes what the statistics hold (the host stops)."""
        if self._stats is not None:
            await self._stats.close()


_Attributes = dict[tuple[str, int, int], Mapping[str, Any]]


def _position(delivery: Delivery) -> tuple[str, int, int]:
    return (delivery.resource, delivery.seq, delivery.index)


def _delivery_id(delivery: Delivery) -> str:
    return delivery_id(delivery.subscription_id, delivery.resource, delivery.seq, delivery.index)


def _attributes_of(
    active: Sequence[tuple[Delivery, Subscription]], events: dict[tuple[str, int], Sequence[bytes]]
) -> _Attributes:
    """Each event of the message parsed once, however many subscriptions it goes to."""
    parsed: _Attributes = {}
    for delivery, _ in active:
        position = _position(delivery)
        if position not in parsed:
            row = events.get((delivery.resource, delivery.seq))
            body = row[delivery.index] if row is not None and delivery.index < len(row) else b"{}"
            parsed[position] = json.loads(body) or {"resource": delivery.resource}
    return parsed


def _failed(result: _Result) -> bool:
    """An attempt reached the endpoint and failed (not a refused address, not a delivery expired unsent)."""
    decision = result.decision
    return (
        result.attempt is not None
        and decision is not None
        and decision.verdict is not Verdict.DELIVERED
        and decision.outcome not in (REFUSED, EXPIRED)
    )


def _refused_by_subject(delivery: Delivery, answer: Attempt | int | None) -> bool:
    """An ordered lane's head, tried again, answered with an error: the endpoint is up and refuses this
    subject's event, which says nothing of how it takes other subjects' pushes (their lanes go on).
    Its lane is paced by the retry schedule; a timeout or 429/503 still counts against the endpoint."""
    status = answer.status_code if isinstance(answer, Attempt) else answer
    return delivery.lane is not None and delivery.attempt > 1 and status is not None and status not in (429, 503)


def _final(result: _Result) -> Final | None:
    """How the delivery ended, or None while it goes on (retried or deferred)."""
    if result.deferred_until is not None:
        return None
    if result.decision is None:
        return Final.FAILED if result.attempt is not None else Final.DROPPED  # unauthorized, or gone
    if result.decision.verdict is Verdict.DELIVERED:
        return Final.PUSHED
    return None if result.decision.verdict is Verdict.RETRY else Final.FAILED


def _event_id(attributes: Mapping[str, Any]) -> str:
    value = attributes.get("id")
    return value if isinstance(value, str) else ""
