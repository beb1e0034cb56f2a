"""Each suite's latest figures, kept under .local/reliability/ and quoted in docs/reliability.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIGURES = Path(__file__).resolve().parents[2] / ".local" / "reliability"


def record_figures(name: str, figures: dict[str, Any]) -> None:
    """Keeps each suite's latest figures under .local/reliability/ for docs/reliability.md."""
    FIGURES.mkdir(parents=True, exist_ok=True)
    (FIGURES / f"{name}.json").write_text(json.dumps(figures, indent=2, sort_keys=True, default=str))
    print(f"\n[{name}] " + json.dumps(figures, sort_keys=True, default=str))
