"""The suite runs on the oldest azure-functions that requirements.txt admits (what Azure's remote build may install)."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _pin(path: Path, operator: str) -> str:
    [found] = re.findall(rf"^azure-functions{re.escape(operator)}([0-9.]+)", path.read_text(), re.MULTILINE)
    return found


def test_the_dev_install_pins_azure_functions_to_the_runtime_floor() -> None:
    floor = _pin(REPO / "requirements.txt", ">=")
    assert _pin(REPO / "requirements-dev.txt", "==") == floor
    assert version("azure-functions") == floor
