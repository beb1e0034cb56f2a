"""Loads ``local.settings.json`` into the environment, the way Core Tools does for ``func start``."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("devhost")

SETTINGS_FILES = ("local.settings.json", "local.settings.sample.json")


@dataclass(frozen=True)
class LoadedSettings:
    """What was loaded: the file (if any), names applied and names left alone because already set."""

    path: Path | None
    applied: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def find_settings_file(root: Path) -> Path | None:
    """``local.settings.json`` wins; the committed sample is the fallback so a fresh clone starts."""
    for name in SETTINGS_FILES:
        candidate = root / name
        if candidate.is_file():
            return candidate
    return None


def load_local_settings(root: Path, environ: MutableMapping[str, str] | None = None) -> LoadedSettings:
    """Copy ``Values`` into ``environ`` without overriding variables that are already set."""
    env = os.environ if environ is None else environ
    path = find_settings_file(root)
    if path is None:
        log.warning("devhost: no local.settings.json or local.settings.sample.json in %s", root)
        return LoadedSettings(path=None)
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or not isinstance(document.get("Values", {}), dict):
        raise TypeError(f"{path}: expected an object with a 'Values' object")
    if document.get("IsEncrypted"):
        raise ValueError(f"{path}: encrypted settings are not supported by devhost")
    applied: list[str] = []
    kept: list[str] = []
    for name, value in document.get("Values", {}).items():
        if name in env:
            kept.append(name)
            continue
        env[name] = _as_setting(value)
        applied.append(name)
    return LoadedSettings(path=path, applied=applied, kept=kept)


def _as_setting(value: object) -> str:
    """App settings are strings; JSON booleans become ``true``/``false`` as the Functions host writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


DEFAULT_PORT = 7071
# Settings whose defaults name devhost's own address, as templates on its port. The issuer
# (HERALD_AUTH_ISSUER) is not among them: it is a name tokens carry, and `devhost token`, which
# does not know the port, must issue the same one. The console's sign-in authority is where the browser
# goes to sign in, so it follows the port (the discovery document there still names the issuer).
PORT_SETTINGS = {
    "HERALD_PUBLIC_BASE_URL": "http://127.0.0.1:{port}",
    "HERALD_LOCAL_EVENTGRID_URL": "http://127.0.0.1:{port}/runtime/webhooks/eventgrid",
    "HERALD_CONSOLE_AUTHORITY": "http://127.0.0.1:{port}/devhost",
}


def follow_port(port: int, loaded: LoadedSettings, environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Points the settings that embed devhost's address at ``port``, unless the user chose them: set
    in the environment before devhost started, or in ``local.settings.json`` with a value other than
    the default (a copied sample still names 7071, and is no choice). Returns the names it set."""
    env = os.environ if environ is None else environ
    from_own_file = loaded.path is not None and loaded.path.name == SETTINGS_FILES[0]
    followed: list[str] = []
    for name, template in PORT_SETTINGS.items():
        chosen_in_file = from_own_file and name in loaded.applied
        if name in env and name not in loaded.applied:
            continue  # set in the environment
        if chosen_in_file and env[name] != template.format(port=DEFAULT_PORT):
            continue
        env[name] = template.format(port=port)
        followed.append(name)
    return followed
