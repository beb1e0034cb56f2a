"""Message ids under Service Bus duplicate detection: a re-send is dropped, a re-queue is not.

Every queue of the event pipeline has duplicate detection (infra/service-bus-queues.json), so two
sends with one message id within ten minutes deliver once. That is what fan-out wants when it
re-sends a batch after a crash, and what would lose deliveries if a later, different send reused
the id: a second deferral of the same deliveries, a second replay, a second enable.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.subscriptions.delivery import Delivery
from shared.subscriptions.messages import delivery_message, validation_message

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
DELIVERIES = [Delivery("key", "sub-1", "urn:altinn:resource:case", 7, 0), Delivery("key", "sub-1", "urn:x", 8, 1)]


def test_a_batch_sent_twice_has_one_id_so_the_copy_is_dropped() -> None:
    assert delivery_message(DELIVERIES).message_id == delivery_message(DELIVERIES).message_id
    due = NOW + timedelta(seconds=10)
    assert (
        delivery_message(DELIVERIES, deliver_at=due).message_id
        == delivery_message(DELIVERIES, deliver_at=due).message_id
    )


def test_the_same_deliveries_deferred_again_later_are_a_new_message() -> None:
    first = delivery_message(DELIVERIES, deliver_at=NOW + timedelta(seconds=3))
    again = delivery_message(DELIVERIES, deliver_at=NOW + timedelta(seconds=6))
    assert first.body == again.body
    assert first.message_id != again.message_id


def test_a_deferral_due_in_the_same_second_as_the_message_that_brought_it_is_a_new_message() -> None:
    # An endpoint busy for 0.5 s defers again to a due time that truncates to the same second.
    due = NOW + timedelta(seconds=12)
    came_with = delivery_message(DELIVERIES, deliver_at=due, occasion=NOW)
    again = delivery_message(DELIVERIES, deliver_at=due, occasion=due + timedelta(milliseconds=300))
    assert came_with.message_id != again.message_id


def test_a_second_replay_of_the_same_dead_letters_is_a_new_message() -> None:
    first = delivery_message(DELIVERIES, occasion=NOW)
    again = delivery_message(DELIVERIES, occasion=NOW + timedelta(minutes=2))
    assert first.message_id != again.message_id
    assert first.message_id != delivery_message(DELIVERIES).message_id


def test_validation_ids_differ_per_validation_and_per_attempt() -> None:
    enabled = validation_message("key", "sub-1", first=NOW)
    assert enabled.message_id == validation_message("key", "sub-1", first=NOW).message_id
    assert enabled.message_id != validation_message("key", "sub-1", first=NOW + timedelta(minutes=3)).message_id
    assert enabled.message_id != validation_message("key", "sub-1", attempt=2, first=NOW).message_id
