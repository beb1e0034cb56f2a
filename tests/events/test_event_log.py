"""The Table Storage event log under concurrency, retention and crashes (real Azurite)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from shared.adapters.table_event_log import TableEventLog
from shared.adapters.tables import table_service
from shared.composition.root import build_herald
from shared.events.dispatch import Dispatcher, OutboxSweeper
from shared.events.log import AppendOutcome
from shared.events.maintenance import apply_retention, sweep_outbox
from shared.events.model import validate_event
from tests.support.events import event, next_link, publish, read_all


def validated(resource: str, event_id: str, **attributes):
    return validate_event(event(resource, event_id, **attributes), received_at=datetime.now(UTC))


async def test_competing_writers_keep_one_gapless_sequence(settings, services, stores, resource):
    """Four independent logs (as four Function instances) append to one resource at once."""
    writers = [TableEventLog(table_service(settings)) for _ in range(4)]
    try:

        async def write(writer: TableEventLog, w: int) -> None:
            for i in range(25):
                results = await writer.append(
                    resource, [validated(resource, f"w{w}-{i}-{j}") for j in range(random.randint(1, 5))]
                )
                assert all(r.outcome is AppendOutcome.STORED for r in results)

        await asyncio.gather(*(write(writer, w) for w, writer in enumerate(writers)))
        rows = await stores.event_log.rows_from(resource, 0, 1000)
        assert [row.seq for row in rows] == list(range(1, len(rows) + 1))
        ids = [json.loads(body)["id"] for row in rows for body in row.events]
        assert len(ids) == len(set(ids))
        assert await stores.event_log.last_seq(resource) == len(rows)
    finally:
        for writer in writers:
            await writer._service.close()


class RecordingListener:
    def __init__(self) -> None:
        self.commits: list[tuple[str, list[int]]] = []

    async def dispatch(self, resource: str, seqs: Sequence[int]) -> None:
        self.commits.append((resource, list(seqs)))


async def test_concurrent_appends_in_one_process_share_transactions(settings, resource):
    listener = RecordingListener()
    log = TableEventLog(table_service(settings), listener=listener)
    try:
        results = await asyncio.gather(*(log.append(resource, [validated(resource, f"g-{i}")]) for i in range(60)))
        await log.flush()
    finally:
        await log._service.close()
    assert all(r[0].outcome is AppendOutcome.STORED for r in results)
    assert len(listener.commits) < 60  # grouped, not one transaction per event


async def test_an_append_is_answered_once_durable_and_the_next_commit_waits_for_the_hand_over(settings, resource):
    class Held:
        def __init__(self) -> None:
            self.release = asyncio.Event()
            self.commits: list[list[int]] = []

        async def dispatch(self, resource: str, seqs: Sequence[int]) -> None:
            self.commits.append(list(seqs))
            await self.release.wait()

    listener = Held()
    log = TableEventLog(table_service(settings), listener=listener)
    try:
        [first] = await asyncio.wait_for(log.append(resource, [validated(resource, "answered")]), timeout=10)
        assert first.outcome is AppendOutcome.STORED  # answered while its hand-over is still held
        assert [row.seq for row in await log.rows_from(resource, 0, 10)] == [first.seq]
        second = asyncio.ensure_future(log.append(resource, [validated(resource, "behind")]))
        await asyncio.sleep(0.3)
        assert not second.done()  # the resource's next commit waits for the hand-over
        assert await log.last_seq(resource) == first.seq
        listener.release.set()
        [after] = await asyncio.wait_for(second, timeout=10)
        await log.flush()
        assert listener.commits == [[first.seq], [after.seq]]
    finally:
        listener.release.set()
        await log._service.close()


async def test_the_log_clears_the_outbox_entry_once_its_listener_returned(settings, services, stores, resource):
    listener = RecordingListener()
    log = TableEventLog(table_service(settings), listener=listener)
    try:
        result = await log.append(resource, [validated(resource, "handed-over")])
        await log.flush()  # the publisher is answered once the rows are durable; they are handed on next
    finally:
        await log._service.close()
    assert listener.commits == [(resource, [result[0].seq])]
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert await stores.event_log.pending_dispatches(resource, committed_before=later) == []


async def test_cursor_reader_sees_every_event_exactly_once_while_publishers_write(client, issuer, resource):
    """The cursor contract: concurrent publishers, a reader following next links from the start."""
    headers = issuer.headers("events.publish", "events.read")
    publishers, per_publisher = 6, 40
    done = asyncio.Event()

    async def publisher(p: int) -> None:
        for i in range(per_publisher):
            batch = [event(resource, f"c-{p}-{i}-{j}") for j in range(random.randint(1, 4))]
            assert (await publish(client, headers, batch)).status_code == 202
            await asyncio.sleep(random.random() / 100)

    async def reader() -> list[str]:
        seen: list[str] = []
        url = f"/api/v1/events?resource={resource}&size=13"
        quiet_after_done = 0
        while quiet_after_done < 2:
            response = await client.get(url, headers=headers)
            assert response.status_code == 200
            page = [e["id"] for e in response.json()]
            seen.extend(page)
            url = next_link(response)
            if done.is_set() and not page:
                quiet_after_done += 1
        return seen

    reading = asyncio.create_task(reader())
    await asyncio.gather(*(publisher(p) for p in range(publishers)))
    done.set()
    seen = await reading

    everything, _ = await read_all(client, headers, f"/api/v1/events?resource={resource}&size=1000")
    stored = [e["id"] for e in everything]
    assert len(stored) == sum(1 for _ in stored) and len(stored) >= publishers * per_publisher
    assert len(seen) == len(set(seen)), "the reader saw an event twice"
    assert len(seen) == len(stored), (len(seen), len(stored), sorted(set(stored) - set(seen))[:10])
    assert seen == stored, "the reader missed events or saw them out of order"
    for p in range(publishers):
        mine = [i for i in seen if i.startswith(f"c-{p}-")]
        assert mine == sorted(mine, key=lambda x: tuple(int(n) for n in x.split("-")[2:]))


async def test_outbox_sweeper_dispatches_rows_whose_publisher_died(settings, services, stores, resource):
    """A commit whose dispatch never happened (process killed) is found and dispatched by the sweeper."""

    class Dying:
        async def dispatch(self, resource: str, seqs: Sequence[int]) -> None:
            raise RuntimeError("process killed after commit")

    crashed = TableEventLog(table_service(settings), listener=Dying())
    try:
        result = await crashed.append(resource, [validated(resource, "orphan")])
        await crashed.flush()
    finally:
        await crashed._service.close()
    assert result[0].outcome is AppendOutcome.STORED

    now = datetime.now(UTC)
    assert await stores.event_log.pending_dispatches(resource, committed_before=now + timedelta(seconds=1))

    sent: list[tuple[str, list[int]]] = []

    class RecordingBus:
        async def send(self, queue, messages):
            for message in messages:
                body = json.loads(message.body)
                sent.append((body["resource"], body["seqs"]))

        async def close(self):
            pass

    sweeper = OutboxSweeper(stores.event_log, Dispatcher(RecordingBus()), grace=timedelta(seconds=0))
    swept = await sweep_outbox(sweeper, stores.checkpoints, now + timedelta(seconds=1))
    assert swept >= 1
    assert (resource, [result[0].seq]) in sent
    assert await stores.event_log.pending_dispatches(resource, committed_before=now + timedelta(seconds=1)) == []


async def test_retention_removes_only_expired_rows_and_their_keys(services, stores, client, issuer, resource):
    headers = issuer.headers("events.publish", "events.read")
    await publish(client, headers, [event(resource, f"old-{i}") for i in range(120)])
    cutoff = datetime.now(UTC)
    await asyncio.sleep(0.01)
    await publish(client, headers, [event(resource, "young")])

    removed = await apply_retention(stores.event_log, cutoff + timedelta(days=90), timedelta(days=90))
    assert removed >= 120
    remaining = (await client.get(f"/api/v1/events?resource={resource}", headers=headers)).json()
    assert [e["id"] for e in remaining] == ["young"]
    # The idempotency keys went with the events: the id may be published again after retention.
    again = await publish(client, headers, [event(resource, "old-0")])
    assert again.json()["stored"] == 1


async def test_services_build_from_settings(settings):
    built = build_herald(settings)
    try:
        assert await built.stores.event_log.last_seq("urn:herald:test:never-used") == 0
    finally:
        await built.close()


async def test_a_page_reads_about_the_rows_it_needs(settings, services, stores, resource):
    """A 100-event page from packed rows reads two rows, and a page of single-event rows a few more
    requests than rows, counted at the storage client."""
    from azure.data.tables.aio import TableServiceClient

    from shared.events.log import Position
    from shared.events.reading import EventFilter, EventReader
    from tests.support.counting import StorageCounter

    await stores.event_log.append(resource, [validated(resource, f"dense{i}") for i in range(300)])
    for i in range(120):
        await stores.event_log.append(resource, [validated(resource, f"sparse{i}")])
    dense = await stores.event_log.rows_from(resource, 0, 10)
    assert len(dense[0].events) > 60  # packed rows, as one batch publish writes them

    counter = StorageCounter()
    service = TableServiceClient.from_connection_string(settings.storage_connection_string, **counter.hooks())
    try:
        reader = EventReader(TableEventLog(service))
        page = await reader.read(resource, Position(dense[0].seq, 40), 100, EventFilter())
        assert [json.loads(e)["id"] for e in page.events] == [f"dense{i}" for i in range(41, 141)]
        assert counter.entities_read <= 2 + 1  # the cursor's row, the next one, and the counter at most

        counter.reset()
        first_sparse = next(r for r in await stores.event_log.rows_from(resource, 0, 100) if len(r.events) == 1)
        page = await reader.read(resource, Position(first_sparse.seq, 0), 100, EventFilter())
        assert [json.loads(e)["id"] for e in page.events] == [f"sparse{i}" for i in range(1, 101)]
        assert counter.entities_read <= 100 + 3  # no rows read beyond the page but a request's overshoot
        assert counter.requests <= 6
    finally:
        await service.close()
