"""The bounded status history, as a pure function of the old and new notification."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from shared.notifications.model import Channel, Notification, RecipientSpec, Status
from shared.notifications.status import HISTORY_LENGTH, history_of, moved, recorded, with_history

T0 = datetime(2026, 3, 4, 11, 0, tzinfo=UTC)


def _new() -> Notification:
    return Notification(
        "n1", "o1", Channel.EMAIL, Status.NEW, T0, "kari@example.com", RecipientSpec("kari@example.com")
    )


def test_a_move_is_appended_and_a_non_move_keeps_the_history():
    first = with_history(None, _new())
    assert [t.status for t in first.history] == [Status.NEW]
    sending = with_history(first, replace(first, status=Status.SENDING, status_time=T0 + timedelta(seconds=1)))
    retried = with_history(sending, replace(sending, status_time=T0 + timedelta(seconds=5), attempt=2))
    assert [t.status for t in retried.history] == [Status.NEW, Status.SENDING]
    done = moved(retried, Status.SUCCEEDED, T0 + timedelta(seconds=6), description="accepted " + "x" * 500)
    assert done is not None
    done = with_history(retried, done)
    assert [t.status for t in done.history] == [Status.NEW, Status.SENDING, Status.SUCCEEDED]
    assert done.history[-1].at == T0 + timedelta(seconds=6)
    assert len(done.history[-1].description or "") == 200


def test_the_history_is_bounded_and_a_notification_without_one_starts_from_its_status():
    legacy = replace(_new(), status=Status.SENDING)
    assert [t.status for t in history_of(legacy)] == [Status.SENDING]
    later = with_history(legacy, replace(legacy, status=Status.SUCCEEDED))
    assert [t.status for t in later.history] == [Status.SENDING, Status.SUCCEEDED]
    current = with_history(None, _new())
    for step in range(HISTORY_LENGTH + 5):
        status = Status.SENDING if step % 2 == 0 else Status.NEW  # not a real path: only the bound is tested
        current = with_history(current, replace(current, status=status, status_time=T0 + timedelta(seconds=step)))
    assert len(current.history) == HISTORY_LENGTH
    assert current.history[-1].at == T0 + timedelta(seconds=HISTORY_LENGTH + 4)


async def test_the_store_persists_the_history_it_is_given_and_adds_none(stores):
    """The history rule is the use cases' (``status.recorded``): a store writes what it is handed, so
    another NotificationStore needs no copy of it."""
    import uuid

    from shared.adapters.table_notifications import TableNotificationStore

    store = TableNotificationStore(stores.tables)
    plain = replace(_new(), id=f"n-{uuid.uuid4().hex}", order_id=f"o-{uuid.uuid4().hex}")
    await store.insert([plain])
    (stored,) = await store.of_order(plain.order_id)
    assert stored.history == ()

    sending = lambda n: moved(n, Status.SENDING, T0 + timedelta(seconds=1))  # noqa: E731
    (changed,) = (await store.change(plain.order_id, [plain.id], sending)).notifications
    assert changed.status is Status.SENDING and changed.history == ()
    succeeded = recorded(lambda n: moved(n, Status.SUCCEEDED, T0 + timedelta(seconds=2)))
    (kept,) = (await store.change(plain.order_id, [plain.id], succeeded)).notifications
    assert [step.status for step in kept.history] == [Status.SENDING, Status.SUCCEEDED]
