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
