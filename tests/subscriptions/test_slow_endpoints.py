"""An endpoint that turns slow holds at most its share of the handlers, and a message never waits on it
for more than one answer: the deliveries to the other endpoints keep going.

The slow receiver's answers are held by an ``asyncio.Event``, so nothing here depends on how fast the
machine is: the tests look at what was delivered and what was deferred while the answers are held.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from shared.subscriptions.delivery import Delivery
from shared.subscriptions.endpoint_guard import HANDLERS, EndpointGuard
from shared.subscriptions.messages import RETRY_QUEUE, DeliveryBatch
from tests.subscriptions.conftest import active_subscription, events_received, worker_with
from tests.subscriptions.test_push import first_outbound
from tests.support.events import event, publish
from tests.support.fakes import FakeClock, RecordingBus
from tests.support.receiver import Behaviour

FAST = "http://127.0.0.1:9/fast"
SLOW = "http://127.0.0.1:9/slow"


class Seconds:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_guard_is_sized_for_the_handlers_the_host_runs():
    document = json.loads((Path(__file__).resolve().parents[2] / "host.json").read_text())
    assert document["extensions"]["serviceBus"]["maxConcurrentCalls"] == HANDLERS


def test_traffic_that_never_filled_the_cap_does_not_raise_it():
    """Thirty prompt answers one at a time prove nothing about thirty at once."""
    guard = EndpointGuard(clock=Seconds())
    for _ in range(30):
        admission = guard.admit(SLOW)
        guard.release(SLOW, admission.ticket, success=True, latency_seconds=0.01)
    assert [guard.admit(SLOW).admitted for _ in range(3)] == [True, True, False]


def test_prompt_answers_at_the_cap_raise_it():
    guard = EndpointGuard(clock=Seconds())
    for _ in range(10):
        tickets = []
        while (admission := guard.admit(FAST)).admitted:
            tickets.append(admission.ticket)
        for ticket in tickets:
            guard.release(FAST, ticket, success=True, latency_seconds=0.01)
    assert sum(guard.admit(FAST).admitted for _ in range(30)) > HANDLERS


def _grown(clock: Seconds) -> EndpointGuard:
    """A guard that trusts SLOW with 20 requests at once, earned with prompt answers."""
    return _trusted(SLOW, 20, patience=2.0, clock=clock)


def test_a_slow_answer_limits_the_endpoint_to_a_quarter_of_the_handlers():
    clock = Seconds()
    guard = _grown(clock)
    first = guard.admit(SLOW)
    guard.release(SLOW, first.ticket, success=True, latency_seconds=25.0)

    admitted = [guard.admit(SLOW) for _ in range(HANDLERS)]
    assert sum(a.admitted for a in admitted) == HANDLERS // 4
    refused = admitted[-1]
    assert not refused.busy and refused.reason == "endpoint slow"  # deferred, not waited for
    assert refused.retry_in >= 2.0
    assert guard.admit(FAST).admitted  # another endpoint is not affected


def test_a_request_out_longer_than_the_patience_makes_the_endpoint_slow_before_it_answers():
    clock = Seconds()
    guard = _grown(clock)
    assert guard.admit(SLOW).admitted
    clock.now += 2.5  # that request has had no answer for longer than the patience
    admitted = [guard.admit(SLOW).admitted for _ in range(HANDLERS)]
    assert sum(admitted) == HANDLERS // 4 - 1  # the share, counting the one still out


def test_a_refused_address_neither_opens_the_circuit_nor_raises_the_cap():
    guard = EndpointGuard(failure_threshold=1, clock=Seconds())
    for _ in range(5):
        admission = guard.admit(SLOW)
        guard.release(SLOW, admission.ticket, success=None)
    assert [guard.admit(SLOW).admitted for _ in range(3)] == [True, True, False]


def _one_message_per_event(deliveries: list[Delivery]) -> list[list[Delivery]]:
    """What publishing one event at a time gives: each outbound message carries one event's deliveries."""
    by_event: dict[tuple[str, int, int], list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        by_event[(delivery.resource, delivery.seq, delivery.index)].append(delivery)
    return list(by_event.values())


async def _handlers(worker, messages: list[list[Delivery]], concurrency: int) -> list[asyncio.Task[None]]:
    """The host's handlers: each takes the next message when its last one is done."""
    queue: asyncio.Queue[list[Delivery]] = asyncio.Queue()
    for message in messages:
        queue.put_nowait(message)

    async def handler() -> None:
        while not queue.empty():
            await worker.handle(queue.get_nowait())

    return [asyncio.create_task(handler()) for _ in range(concurrency)]


def _received(receiver, path: str) -> set[str]:
    return {e["id"] for e in events_received(receiver, path)}


async def _until(condition, limit: float = 20.0) -> None:
    """Polls a state; the limit only keeps a failing test from hanging."""
    deadline = time.monotonic() + limit
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


async def test_an_endpoint_that_turns_slow_holds_at_most_its_share_while_the_fast_one_keeps_receiving(
    client, issuer, receiver, resource, services, stores, herald
):
    fast = receiver.url("fast")
    slow = receiver.behave("slow", Behaviour(status=200))
    for url in (fast, slow):
        await active_subscription(client, issuer, stores, {"endPoint": url, "resourceFilter": resource})
    await publish(client, issuer.headers("events.publish"), [event(resource, f"warm{i}") for i in range(30)])
    await publish(client, issuer.headers("events.publish"), [event(resource, f"e{i}") for i in range(40)])
    warm, messages = _split(_one_message_per_event((await first_outbound(stores, resource)).deliveries()), 30)
    clock, bus = FakeClock(), RecordingBus()
    worker = worker_with(herald, clock, bus, guard=EndpointGuard(patience_seconds=0.5))

    # Healthy at first: one event at a time, every answer prompt.
    for message in warm:
        await worker.handle(message)
    assert len(_received(receiver, "slow")) == 30

    # Then every answer of the slow endpoint waits until the test lets it go.
    answers = asyncio.Event()
    receiver.behaviours["/slow"] = Behaviour(status=200, hold=answers)
    handlers = await _handlers(worker, messages, HANDLERS)
    wanted = {f"e{i}" for i in range(40)}
    try:
        # Every message is handled but those whose slow request is still out.
        await _until(lambda: sum(not task.done() for task in handlers) <= receiver.in_flight["/slow"])
        assert wanted <= _received(receiver, "fast")  # every fast delivery, the slow answers still held
        held = receiver.in_flight["/slow"]
        assert 1 <= held <= HANDLERS // 4
        assert receiver.max_in_flight["/slow"] <= HANDLERS // 4
        assert sum(not task.done() for task in handlers) == held  # the handlers the slow endpoint holds
        deferred = [d for m in bus.take(RETRY_QUEUE) for d in DeliveryBatch.model_validate_json(m.body).deliveries()]
        assert len(deferred) == 40 - held and {d.attempt for d in deferred} == {1}  # not attempted
    finally:
        answers.set()
        await asyncio.gather(*handlers)
    assert len(_received(receiver, "slow")) == 30 + held


async def test_a_message_hands_a_known_slow_endpoints_remaining_deliveries_on_without_attempting_them(
    client, issuer, receiver, resource, services, stores, herald
):
    """One message with six events for an endpoint known to be slow: its cap's worth go out, the rest
    is deferred without an attempt instead of waiting its turn behind them, and the fast endpoint's
    six arrive while the slow answers are held."""
    fast = receiver.url("fast")
    slow = receiver.behave("slow", Behaviour(status=200))
    for url in (fast, slow):
        await active_subscription(client, issuer, stores, {"endPoint": url, "resourceFilter": resource})
    await publish(client, issuer.headers("events.publish"), [event(resource, "before")])
    clock, bus = FakeClock(), RecordingBus()
    worker = worker_with(herald, clock, bus, guard=EndpointGuard(patience_seconds=0.3))
    receiver.behaviours["/slow"] = Behaviour(status=200, delay=0.5)  # longer than the patience
    await worker.handle((await first_outbound(stores, resource)).deliveries())

    answers = asyncio.Event()
    receiver.behaviours["/slow"] = Behaviour(status=200, hold=answers)
    await publish(client, issuer.headers("events.publish"), [event(resource, f"m{i}") for i in range(6)])
    batch = [d for d in (await first_outbound(stores, resource)).deliveries() if d.seq > 1 or d.index > 0]
    sent_before = len(_received(receiver, "slow"))
    handled = asyncio.create_task(worker.handle(batch))
    try:
        await _until(lambda: len(_received(receiver, "fast")) == 7 and receiver.in_flight["/slow"] > 0)
        assert _received(receiver, "fast") >= {f"m{i}" for i in range(6)}
        held = receiver.in_flight["/slow"]
        assert not handled.done()
    finally:
        answers.set()
        await handled
    assert len(_received(receiver, "slow")) - sent_before == held <= HANDLERS // 4
    deferred = [d for m in bus.take(RETRY_QUEUE) for d in DeliveryBatch.model_validate_json(m.body).deliveries()]
    assert len(deferred) == 6 - held and {d.attempt for d in deferred} == {1}  # not attempted


def _split(messages: list[list[Delivery]], first: int) -> tuple[list[list[Delivery]], list[list[Delivery]]]:
    ordered = sorted(messages, key=lambda m: (m[0].seq, m[0].index))
    return ordered[:first], ordered[first:]


def _trusted(url: str, at_once: int, patience: float, clock: Callable[[], float] = time.monotonic) -> EndpointGuard:
    """A guard that trusts ``url`` with ``at_once`` requests at once, earned with prompt answers."""
    guard = EndpointGuard(handlers=HANDLERS, patience_seconds=patience, clock=clock)
    while True:
        tickets = []
        while (admission := guard.admit(url)).admitted:
            tickets.append(admission.ticket)
        for ticket in tickets:
            guard.release(url, ticket, success=True, latency_seconds=0.01)
        if len(tickets) >= at_once:
            return guard


async def test_an_endpoint_trusted_with_every_handler_that_turns_slow_is_cut_back_to_its_share(
    client, issuer, receiver, resource, services, stores, herald
):
    """Its cap had grown past the handlers when it stopped answering: every handler took one of its
    requests before any was late. Past the patience, all but its share are cut (and retried), so the
    handlers go back to the other endpoints' messages."""
    fast = receiver.url("fast")
    slow = receiver.behave("slow", Behaviour(status=200))
    for url in (fast, slow):
        await active_subscription(client, issuer, stores, {"endPoint": url, "resourceFilter": resource})
    answers = asyncio.Event()
    receiver.behaviours["/slow"] = Behaviour(status=200, hold=answers)
    await publish(client, issuer.headers("events.publish"), [event(resource, f"e{i}") for i in range(40)])
    messages = sorted(
        _one_message_per_event((await first_outbound(stores, resource)).deliveries()),
        key=lambda m: (m[0].seq, m[0].index),
    )
    clock, bus = FakeClock(), RecordingBus()
    worker = worker_with(herald, clock, bus, guard=_trusted(slow, HANDLERS + 4, patience=0.3))

    handlers = await _handlers(worker, messages, HANDLERS)
    wanted = {f"e{i}" for i in range(40)}
    try:
        # Past the patience, the handlers the slow endpoint keeps are its share.
        await _until(
            lambda: wanted <= _received(receiver, "fast") and sum(not t.done() for t in handlers) <= HANDLERS // 4
        )
        assert receiver.max_in_flight["/slow"] > HANDLERS // 4  # it held more than its share at first
        assert wanted <= _received(receiver, "fast")  # every fast delivery, the slow answers still held
        assert sum(not task.done() for task in handlers) <= HANDLERS // 4  # the handlers it still holds
        assert receiver.in_flight["/slow"] <= HANDLERS // 4
        retried = [d for m in bus.take(RETRY_QUEUE) for d in DeliveryBatch.model_validate_json(m.body).deliveries()]
        assert any(d.attempt == 2 for d in retried)  # the cut requests, retried as after a timeout
    finally:
        answers.set()
        await asyncio.gather(*handlers)


async def test_a_message_whose_own_request_is_out_waits_for_it_without_spinning(
    client, issuer, receiver, resource, services, monkeypatch, stores, herald
):
    """A delivery turned away as busy, once its wait for a slot is over, is deferred; the message then
    waits for its own request still out, as one wait, not a loop of zero-second ones."""
    answers = asyncio.Event()
    slow = receiver.behave("slow", Behaviour(status=200))
    await active_subscription(client, issuer, stores, {"endPoint": slow, "resourceFilter": resource})
    receiver.behaviours["/slow"] = Behaviour(status=200, hold=answers)
    await publish(client, issuer.headers("events.publish"), [event(resource, f"b{i}") for i in range(4)])
    batch = (await first_outbound(stores, resource)).deliveries()
    clock, bus = FakeClock(), RecordingBus()
    worker = worker_with(herald, clock, bus, guard=EndpointGuard(patience_seconds=5.0))
    waits = 0
    wait = asyncio.wait

    async def counted(*args, **kwargs):
        nonlocal waits
        waits += 1
        return await wait(*args, **kwargs)

    monkeypatch.setattr(asyncio, "wait", counted)
    handled = asyncio.create_task(worker.handle(batch))
    try:
        await _until(lambda: receiver.in_flight["/slow"] == 2)  # its slow-start cap; two more wait for a slot
        await asyncio.sleep(1.0)  # longer than a slot is waited for: those two are deferred by now
        counted_then = waits
        await asyncio.sleep(0.3)
        assert not handled.done() and receiver.in_flight["/slow"] == 2
        assert waits - counted_then <= 2
    finally:
        answers.set()
        await handled


def test_endpoints_sharing_a_host_are_admitted_together_up_to_the_hosts_cap():
    guard = EndpointGuard(max_in_flight_per_host=3, clock=Seconds())
    admissions = [guard.admit(f"http://receiver.example:8080/hook/{n}") for n in range(4)]
    assert [a.admitted for a in admissions] == [True, True, True, False]
    assert admissions[3].busy and admissions[3].reason == "host busy"
    assert guard.admit("http://other.example/hook").admitted  # another host is not held back


async def test_a_delivery_waiting_for_its_host_is_woken_by_a_slot_of_another_endpoint():
    guard = EndpointGuard(max_in_flight_per_host=2, clock=Seconds())
    first = guard.admit("http://receiver.example/a")
    assert guard.admit("http://receiver.example/b").admitted
    assert not guard.admit("http://receiver.example/c").admitted
    slot = guard.released("http://receiver.example/c")  # /c has nothing in flight to free a slot itself
    guard.release("http://receiver.example/a", first.ticket, success=True, latency_seconds=0.01)
    assert slot.done()
    assert guard.admit("http://receiver.example/c").admitted
