"""Reliability suites: crashes, faults and long outages. ``make soak`` runs the long variants."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soak: long reliability run; only with HERALD_SOAK=1 (make soak)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("HERALD_SOAK") == "1":
        return
    skip = pytest.mark.skip(reason="soak run: make soak (HERALD_SOAK=1)")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)
