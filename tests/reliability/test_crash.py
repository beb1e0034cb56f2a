"""Nothing acknowledged is lost, nothing is stored twice, when devhost is SIGKILLed and Azurite restarts.

The short run is part of ``make test``; the 10,000-event run is ``make soak``.
"""

from __future__ import annotations

import dataclasses
import os
import random

import pytest

from tests.reliability.crash import Chaos, Scenario
from tests.reliability.figures import record_figures

pytestmark = pytest.mark.e2e


def seed() -> int:
    return int(os.environ.get("HERALD_RELIABILITY_SEED") or random.randrange(1_000_000))


async def run_scenario(name: str, scenario: Scenario, tmp_path, *, max_duplicate_percent: float) -> None:
    chaos = Chaos(scenario, tmp_path)
    try:
        figures = await chaos.run()
    finally:
        chaos.close()
    record = {"scenario": dataclasses.asdict(scenario), **dataclasses.asdict(figures), "timeline": chaos.log}
    record["duplicate_target_met"] = figures.duplicate_rate_percent < 1.0
    record_figures(name, record)
    f = figures
    assert f.devhost_kills == scenario.kills and f.azurite_restarts == scenario.azurite_restarts
    assert f.acknowledged == scenario.events
    assert f.lost_acknowledged == 0 and f.stored_duplicates == 0 and f.stored == scenario.events, record
    assert f.deliveries_missing == 0, record
    assert f.cursor_reader_missing == 0 and f.cursor_reader_duplicates == 0, record
    assert f.duplicate_rate_percent < max_duplicate_percent, record


@pytest.mark.timeout(420)
async def test_crashes_lose_nothing_acknowledged(tmp_path):
    scenario = Scenario(events=2_000, subscriptions=5, kills=2, azurite_restarts=1, batch=5, seed=seed())
    # A SIGKILL or a storage outage redelivers the outbound messages in flight, and a redelivered
    # message pushes only the deliveries no settle recorded: what remains are the pushes made in the
    # moments before a kill, whose record had not landed yet. That count per kill is about constant,
    # so a short run with two kills has a higher rate than the soak run (0-0.83 % in the latest
    # runs; 0-3.4 % before, up to 17 % with 1,000 events).
    await run_scenario("crash-short", scenario, tmp_path, max_duplicate_percent=2.0)


@pytest.mark.soak
@pytest.mark.timeout(1800)
async def test_soak_ten_thousand_events_five_kills(tmp_path):
    scenario = Scenario(
        events=10_000, subscriptions=20, kills=5, azurite_restarts=1, batch=10, seed=seed(), converge_seconds=900
    )
    # Under 1 % (the latest figure is in docs/reliability.md).
    await run_scenario("crash-soak", scenario, tmp_path, max_duplicate_percent=1.0)
