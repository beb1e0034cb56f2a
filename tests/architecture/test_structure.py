"""Structural checks: every queue has a consumer and a producer, every setting is documented."""

from __future__ import annotations

import json
import re
from pathlib import Path

from shared.composition.storage import QUEUES
from tests.support.functions_index import functions

REPO = Path(__file__).resolve().parents[2]


def bindings():
    return [(function.get_function_name(), binding) for function in functions() for binding in function.get_bindings()]


def test_the_app_indexes():
    names = [function.get_function_name() for function in functions()]
    assert len(names) == len(set(names))
    assert "http_api" in names


def test_every_queue_has_exactly_one_consumer():
    consumed = [binding.queue_name for _, binding in bindings() if binding.type == "serviceBusTrigger"]
    assert sorted(consumed) == sorted(QUEUES)


def test_every_service_bus_trigger_uses_the_shared_connection_setting():
    for name, binding in bindings():
        if binding.type == "serviceBusTrigger":
            assert binding.connection == "ServiceBusConnection", name


def test_every_setting_read_is_documented_in_the_sample():
    sample = json.loads((REPO / "local.settings.sample.json").read_text())
    documented = set(sample["Documentation"])
    source = (REPO / "shared" / "config.py").read_text()
    read = set(re.findall(r'env\.get\("([A-Za-z_]+)"', source)) | set(re.findall(r'_int\(env, "([A-Za-z_]+)"', source))
    read |= {f"{prefix}{suffix}" for prefix in ("HeraldStorage", "ServiceBusConnection") for suffix in ("",)}
    assert read, "config.py reads no settings?"
    assert read - documented == set()
    assert set(sample["Values"]) <= documented
    for name, doc in sample["Documentation"].items():
        assert doc["scope"] in {"local", "azure", "both"}, name
        assert len(doc["description"]) > 20, name
