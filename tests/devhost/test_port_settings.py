"""Which settings follow ``--port``: those naming devhost's address, unless the user chose them, in
the environment or in local.settings.json (a copied sample's 7071 value is no choice)."""

from __future__ import annotations

import json
from pathlib import Path

from devhost.settings import follow_port, load_local_settings

SAMPLE_VALUES = {
    "HERALD_PUBLIC_BASE_URL": "http://127.0.0.1:7071",
    "HERALD_LOCAL_EVENTGRID_URL": "http://127.0.0.1:7071/runtime/webhooks/eventgrid",
    "HERALD_AUTH_ISSUER": "http://127.0.0.1:7071/devhost",
}


def settings_at(root: Path, name: str, values: dict[str, str]) -> Path:
    (root / name).write_text(json.dumps({"IsEncrypted": False, "Values": values}), encoding="utf-8")
    return root


def started(root: Path, port: int, environ: dict[str, str]) -> dict[str, str]:
    follow_port(port, load_local_settings(root, environ), environ)
    return environ


def test_the_sample_defaults_follow_the_port(tmp_path):
    env = started(settings_at(tmp_path, "local.settings.sample.json", SAMPLE_VALUES), 7171, {})
    assert env["HERALD_PUBLIC_BASE_URL"] == "http://127.0.0.1:7171"
    assert env["HERALD_LOCAL_EVENTGRID_URL"] == "http://127.0.0.1:7171/runtime/webhooks/eventgrid"
    # The console signs in where devhost listens.
    assert env["HERALD_CONSOLE_AUTHORITY"] == "http://127.0.0.1:7171/devhost"
    # The issuer is a name tokens carry; `devhost token` does not know the port, so it stays.
    assert env["HERALD_AUTH_ISSUER"] == "http://127.0.0.1:7071/devhost"


def test_unset_settings_follow_the_port(tmp_path):
    env = started(tmp_path, 7272, {})  # no settings file at all
    assert env["HERALD_PUBLIC_BASE_URL"] == "http://127.0.0.1:7272"


def test_a_copied_sample_follows_but_a_value_of_ones_own_stays(tmp_path):
    values = SAMPLE_VALUES | {"HERALD_PUBLIC_BASE_URL": "https://herald.example.test"}
    env = started(settings_at(tmp_path, "local.settings.json", values), 7171, {})
    assert env["HERALD_PUBLIC_BASE_URL"] == "https://herald.example.test"
    assert env["HERALD_LOCAL_EVENTGRID_URL"] == "http://127.0.0.1:7171/runtime/webhooks/eventgrid"


def test_the_environment_wins_even_with_the_default_value(tmp_path):
    environ = {"HERALD_LOCAL_EVENTGRID_URL": "http://127.0.0.1:7071/runtime/webhooks/eventgrid"}
    env = started(settings_at(tmp_path, "local.settings.json", SAMPLE_VALUES), 7171, environ)
    assert env["HERALD_LOCAL_EVENTGRID_URL"] == "http://127.0.0.1:7071/runtime/webhooks/eventgrid"
    assert env["HERALD_PUBLIC_BASE_URL"] == "http://127.0.0.1:7171"
