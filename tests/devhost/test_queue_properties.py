"""Where devhost's Service Bus behaviour comes from: the infra's queue declaration and host.json."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devhost.durations import parse_iso8601_duration, parse_timespan
from devhost.functions_index import index_functions
from devhost.host import (
    REPO_ROOT,
    DevHost,
    DevHostError,
    DevHostOptions,
    ServiceBusHostSettings,
    read_service_bus_settings,
)
from devhost.queue_properties import QUEUES_FILE, QueueProperties, load_queue_properties
from devhost.servicebus import DuplicateHistory
from tests.support.functions_index import app_settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT1M", timedelta(minutes=1)),
        ("PT5M", timedelta(minutes=5)),
        ("PT30S", timedelta(seconds=30)),
        ("PT1.5S", timedelta(seconds=1.5)),
        ("P7D", timedelta(days=7)),
        ("P1DT2H3M4S", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        (" PT10M ", timedelta(minutes=10)),
    ],
)
def test_iso8601_durations(text: str, expected: timedelta) -> None:
    assert parse_iso8601_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1M", "PT", "P1M", "P1Y", "-PT1M", "00:01:00", "PTXS"])
def test_iso8601_durations_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_iso8601_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("00:05:00", timedelta(minutes=5)),
        ("00:00:02", timedelta(seconds=2)),
        ("1.02:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("00:00:00.5", timedelta(milliseconds=500)),
        ("00:00:01.0000001", timedelta(seconds=1)),
        ("-00:00:00.0010000", -timedelta(milliseconds=1)),
    ],
)
def test_timespans(text: str, expected: timedelta) -> None:
    assert parse_timespan(text) == expected


@pytest.mark.parametrize("text", ["PT5M", "5", "00:60:00", "24:00:00", "00:05", "0:0:0:0"])
def test_timespans_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timespan(text)


def write_queues(tmp_path: Path, queues: object) -> Path:
    path = tmp_path / "queues.json"
    path.write_text(json.dumps(queues))
    return path


def test_queue_properties_come_from_the_declaration(tmp_path: Path) -> None:
    path = write_queues(
        tmp_path,
        [
            {
                "name": "events-outbound",
                "description": "first attempts",
                "maxDeliveryCount": 7,
                "lockDuration": "PT5M",
                "requiresDuplicateDetection": True,
                "duplicateDetectionHistoryTimeWindow": "PT10M",
                "deadLetteringOnMessageExpiration": True,
                "defaultMessageTimeToLive": "P2D",
            },
            {"name": "bare"},
        ],
    )
    queues = load_queue_properties(path)
    assert queues["events-outbound"] == QueueProperties(
        lock_duration=timedelta(minutes=5),
        max_delivery_count=7,
        requires_duplicate_detection=True,
        duplicate_detection_window=timedelta(minutes=10),
    )
    assert queues["events-outbound"].lock_seconds == 300
    # Properties left out take Service Bus's defaults.
    assert queues["bare"] == QueueProperties(
        lock_duration=timedelta(minutes=1), max_delivery_count=10, requires_duplicate_detection=False
    )


def test_devhost_gives_heralds_queues_their_declared_properties(caplog: pytest.LogCaptureFixture) -> None:
    from function_app import app

    declared = json.loads((REPO_ROOT / QUEUES_FILE).read_text(encoding="utf-8"))
    host = DevHost(app, DevHostOptions(function_directory=REPO_ROOT))
    with caplog.at_level(logging.WARNING, logger="devhost"):
        queues = host._queues(index_functions(app, app_settings()))
    assert not [r for r in caplog.records if "not declared" in r.getMessage()]
    assert set(queues) == {entry["name"] for entry in declared}
    for entry in declared:
        properties = queues[entry["name"]]
        assert properties.lock_duration == parse_iso8601_duration(entry["lockDuration"])
        assert properties.max_delivery_count == entry["maxDeliveryCount"]
        assert properties.requires_duplicate_detection is entry["requiresDuplicateDetection"]
        assert properties.duplicate_detection_window == parse_iso8601_duration(
            entry["duplicateDetectionHistoryTimeWindow"]
        )
    # The environment's lock override (crash drills) shortens every lock and changes nothing else.
    overridden = DevHost(app, DevHostOptions(function_directory=REPO_ROOT, lock_seconds=5))._queues(
        index_functions(app, app_settings())
    )
    assert {name: (q.lock_seconds, q.max_delivery_count) for name, q in overridden.items()} == {
        name: (5, q.max_delivery_count) for name, q in queues.items()
    }


@pytest.mark.parametrize(
    ("entry", "complaint"),
    [
        ({"name": "q", "lockDuration": "PT6M"}, "lockDuration"),
        ({"name": "q", "lockDuration": "PT1S"}, "lockDuration"),
        ({"name": "q", "lockDuration": 60}, "lockDuration"),
        ({"name": "q", "duplicateDetectionHistoryTimeWindow": "PT10S"}, "duplicateDetectionHistoryTimeWindow"),
        ({"name": "q", "duplicateDetectionHistoryTimeWindow": "P8D"}, "duplicateDetectionHistoryTimeWindow"),
        ({"name": "q", "maxDeliveryCount": 0}, "maxDeliveryCount"),
        ({"name": "q", "maxDeliveryCount": "10"}, "maxDeliveryCount"),
        ({"name": "q", "requiresDuplicateDetection": "yes"}, "requiresDuplicateDetection"),
        ({"lockDuration": "PT1M"}, "no name"),
    ],
)
def test_declarations_service_bus_would_reject_are_refused(
    tmp_path: Path, entry: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        load_queue_properties(write_queues(tmp_path, [entry]))


def test_a_queue_declared_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="twice"):
        load_queue_properties(write_queues(tmp_path, [{"name": "q"}, {"name": "q"}]))


def test_service_bus_host_settings(tmp_path: Path) -> None:
    assert read_service_bus_settings(tmp_path) == ServiceBusHostSettings(timedelta(minutes=5), 16)
    host_json = tmp_path / "host.json"
    host_json.write_text(
        json.dumps({"extensions": {"serviceBus": {"maxAutoLockRenewalDuration": "00:00:30", "maxConcurrentCalls": 4}}})
    )
    assert read_service_bus_settings(tmp_path) == ServiceBusHostSettings(timedelta(seconds=30), 4)
    host_json.write_text(
        json.dumps({"extensions": {"serviceBus": {"maxAutoLockRenewalDuration": "-00:00:00.0010000"}}})
    )
    assert read_service_bus_settings(tmp_path).max_auto_lock_renewal is None  # InfiniteTimeSpan
    host_json.write_text(json.dumps({"extensions": {"serviceBus": {"maxAutoLockRenewalDuration": "5 minutes"}}}))
    with pytest.raises(DevHostError, match="maxAutoLockRenewalDuration"):
        read_service_bus_settings(tmp_path)
    # Herald's own host.json.
    assert read_service_bus_settings(REPO_ROOT) == ServiceBusHostSettings(timedelta(minutes=5), 16)


def test_environment_overrides_only_what_it_sets() -> None:
    assert DevHostOptions.from_env({}).lock_seconds is None
    assert DevHostOptions.from_env({}).concurrency is None
    options = DevHostOptions.from_env({"HERALD_DEVHOST_LOCK_SECONDS": "5", "HERALD_DEVHOST_CONCURRENCY": "2"})
    assert (options.lock_seconds, options.concurrency) == (5, 2)


def test_duplicate_history() -> None:
    window = timedelta(minutes=10)
    history = DuplicateHistory(window)
    t0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert history.first_sent("m", "storage-1", t0, now=t0) is None
    # The same storage message delivered again is a redelivery, not a duplicate.
    assert history.first_sent("m", "storage-1", t0, now=t0 + timedelta(minutes=1)) is None
    # Another message with that id, sent within the window: a duplicate of the first.
    assert history.first_sent("m", "storage-2", t0 + timedelta(minutes=9), now=t0 + timedelta(minutes=9)) == t0
    # Sent before the first but within the window of it (it waited longer, e.g. scheduled): a duplicate too.
    assert history.first_sent("m", "storage-3", t0 - timedelta(minutes=2), now=t0 + timedelta(minutes=9)) == t0
    # Sent after the window: a new message, which the history now remembers instead.
    later = t0 + timedelta(minutes=10, seconds=1)
    assert history.first_sent("m", "storage-4", later, now=later) is None
    assert history.first_sent("m", "storage-5", later + timedelta(seconds=5), now=later + timedelta(seconds=5)) == later
    # Other ids are independent, and an id is forgotten a window after it was recorded.
    assert history.first_sent("other", "storage-6", later, now=later) is None
    assert history.first_sent("other", "storage-7", later, now=later + window + timedelta(seconds=1)) is None


def test_devhost_refuses_to_start_on_a_declaration_service_bus_would_reject(tmp_path: Path) -> None:
    from function_app import app

    (tmp_path / "infra").mkdir()
    (tmp_path / QUEUES_FILE).write_text(json.dumps([{"name": "events-inbound", "lockDuration": "PT10M"}]))
    host = DevHost(app, DevHostOptions(function_directory=tmp_path))
    with pytest.raises(DevHostError, match=r"events-inbound.*lockDuration"):
        host._queues(index_functions(app, app_settings()))
