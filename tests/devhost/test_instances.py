"""Several devhost instances on one Azurite (``devhost start --instances N``): timers run once per
occurrence under the listener lock, and a sign-in code works at whichever instance takes the token
request. The whole CLI with two instances is exercised in tests/reliability/test_two_instances.py."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

import devhost.timer_lock
from devhost.azurite import Azurite
from devhost.host import DevHost, DevHostOptions
from tests.devhost.sample_app import Recorder, build_app
from tests.devhost.test_signin import make_issuer


async def test_two_instances_run_each_timer_occurrence_once_and_the_other_takes_over(
    azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devhost.timer_lock, "ACQUIRE_EVERY_SECONDS", 0.3)
    recorder = Recorder()
    prefix = f"inst-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("DEVHOST_TEST_FLAKY_QUEUE", f"{prefix}-flaky")
    hosts = [
        DevHost(
            build_app(prefix, recorder),
            DevHostOptions(
                port=0,
                storage_connection_string=azurite.connection_string,
                route_prefix="",
                provision_app=False,
                # Unique per run: the lock table outlives the test in the session's Azurite.
                timer_lock_owner=f"{prefix}/{number}",
            ),
        )
        for number in range(2)
    ]
    for host in hosts:
        await host.start()
    try:
        await asyncio.sleep(4.5)
        together = [tick["at"] for tick in recorder.of("tick")]
        # The holder stops: its lease is given up and the other instance runs the schedule.
        await hosts[0].stop()
        stopped = time.time()
        await asyncio.sleep(3)
        after = [tick["at"] for tick in recorder.of("tick") if tick["at"] > stopped]
    finally:
        for host in hosts:
            await host.stop()
    assert len(together) >= 4, together
    # After the holder's run_on_startup tick, one tick per scheduled second, never two.
    gaps = [b - a for a, b in itertools.pairwise(sorted(together)[1:])]
    assert min(gaps) > 0.5, f"an occurrence ran twice: {gaps}"
    assert len(after) >= 2, "the other instance took the schedule over"


async def test_a_code_from_one_instance_is_exchanged_once_at_another(state: Path, tmp_path: Path) -> None:
    first, second = make_issuer(state, tmp_path / "a"), make_issuer(state, tmp_path / "b")
    async with first.http, second.http:
        code = await first.code()
        exchanged = await second.exchange(code)
        again = await first.exchange(code)
    assert exchanged.status_code == 200, exchanged.text
    assert exchanged.json()["token_type"] == "Bearer"
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("devhost-state")


async def test_two_instances_share_one_port(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> None:
    """SO_REUSEPORT: the second instance binds the port the first one serves, and the port keeps answering."""
    recorder = Recorder()
    prefix = f"port-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("DEVHOST_TEST_FLAKY_QUEUE", f"{prefix}-flaky")
    options = DevHostOptions(
        port=0,
        storage_connection_string=azurite.connection_string,
        route_prefix="",
        provision_app=False,
        reuse_port=True,
    )
    first = DevHost(build_app(prefix, recorder), options)
    await first.start()
    second = DevHost(build_app(prefix, recorder), replace(options, port=first.port))
    try:
        await second.start()
        assert second.port == first.port
        async with httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0)) as http:
            for _ in range(4):
                assert (await http.get(f"{first.url}/admin/host/status")).status_code == 200
    finally:
        await second.stop()
        await first.stop()
