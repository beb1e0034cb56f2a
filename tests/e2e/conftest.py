"""devhost as a process, as a developer runs it, shared by the end-to-end tests of a module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.devhost_process import DevhostProcess, devhost_process


@pytest.fixture(scope="module")
def devhost(azurite, settings, tmp_path_factory) -> Iterator[DevhostProcess]:
    with devhost_process(azurite, settings, tmp_path_factory.mktemp("devhost")) as process:
        yield process
