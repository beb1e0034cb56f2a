"""checkov starts when the session does, if its test was selected, so its minute of start-up overlaps the
tests before it (tests/infra/test_checkov.py)."""

from __future__ import annotations

import pytest

from tests.infra import test_checkov

CHECKOV_TEST = "test_checkov.py::test_checkov_passes_on_infra"


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(item.nodeid.endswith(CHECKOV_TEST) for item in session.items):
        test_checkov.start_in_background()


def pytest_sessionfinish(session: pytest.Session) -> None:
    run = test_checkov.running.pop("run", None)
    if run is not None:  # its test did not run (stopped early)
        run.stop()
