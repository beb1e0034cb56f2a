"""devhost as a process, as a developer runs it, shared by the end-to-end tests of this package: started
once and kept running from module to module (a start costs seconds), restarted only for a module that
needs other settings (its ``DEVHOST_SETTINGS``). Each test makes its own resources and subscriptions, so
they stay independent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.devhost_process import E2E_SETTINGS, DevhostProcess, SharedDevhost

HERE = Path(__file__).parent


def _settings(module: object) -> dict[str, str]:
    return dict(getattr(module, "DEVHOST_SETTINGS", E2E_SETTINGS))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules that need other settings run after the rest of this package, so devhost starts once
    for the rest and once for each of them, not again after each."""
    positions = [n for n, item in enumerate(items) if HERE in item.path.parents]
    if not positions:
        return
    ours = [items[n] for n in positions]
    others = [item for item in ours if _settings(getattr(item, "module", None)) != E2E_SETTINGS]
    if not others:
        return
    shared = [item for item in ours if item not in others]
    for n, item in zip(positions, shared + others, strict=True):
        items[n] = item


@pytest.fixture(scope="package")
def devhosts(azurite, settings, tmp_path_factory) -> Iterator[SharedDevhost]:
    shared = SharedDevhost(azurite, settings, lambda: tmp_path_factory.mktemp("devhost"))
    yield shared
    shared.stop()


@pytest.fixture(scope="module")
def devhost(devhosts: SharedDevhost, request: pytest.FixtureRequest) -> DevhostProcess:
    return devhosts.use(_settings(request.module))
