"""checkov starts when the session does, if its test was selected, so its minute of start-up overlaps the
tests before it (tests/infra/test_checkov.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.infra import test_checkov
from tests.support.metrics import metric_reader

CHECKOV_TEST = "test_checkov.py::test_checkov_passes_on_infra"


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(item.nodeid.endswith(CHECKOV_TEST) for item in session.items):
        test_checkov.start_in_background()


def pytest_sessionfinish(session: pytest.Session) -> None:
    run = test_checkov.running.pop("run", None)
    if run is not None:  # its test did not run (stopped early)
        run.stop()


@pytest.fixture(scope="module")
def sdk() -> Iterator[tuple[InMemorySpanExporter, InMemoryMetricReader | None]]:
    """An in-memory span exporter of the module's own on the SDK tracer provider, and the shared metric
    reader. The providers are installed once per process (the OTel globals can be set only once)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter, metric_reader()
