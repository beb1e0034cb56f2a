"""Herald's dependency rule, read from the imports (docs/architecture.md, "Layers").

The feature packages hold the application and reach the outside world only through their ports;
adapters are chosen in one place, the composition root. Altinn Notifications has the build refuse a
project reference that breaks its layering; this test is that guarantee here. It reads every import
statement, including those inside functions and ``TYPE_CHECKING`` blocks, since a lazy import is
still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / "shared"

# In dependency order: a feature package may import the ones before it, never one after it.
FEATURES = ("identity", "events", "notifications", "subscriptions")
# Libraries that speak to the outside world: only adapters (and hosts) may use them.
OUTSIDE_WORLD = ("azure", "aiohttp", "fastapi", "starlette", "msal", "requests", "httpx", "opentelemetry.sdk")
COMPOSITION = "shared.composition"
SERVICES = "shared.services"  # the use cases, above the features
ADAPTERS = "shared.adapters"
API = "shared.api"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, package: str | None = None) -> Iterator[tuple[int, str]]:
    """Every module ``path`` imports, resolved to its absolute name, with the line it is on."""
    if package is None:
        package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # ``from shared import adapters`` names a module too
                yield node.lineno, f"{module}.{alias.name}"


def _within(module: str, *packages: str) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


def _sources(*roots: Path) -> list[Path]:
    files: list[Path] = []
    for root in roots:
        files.extend([root] if root.is_file() else sorted(root.rglob("*.py")))
    return files


def _violations(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in files
        for line, module in _imports(path)
        if _within(module, *forbidden)
    ]


@pytest.mark.parametrize("feature", FEATURES)
def test_a_feature_reaches_the_world_only_through_its_ports(feature: str) -> None:
    files = _sources(SHARED / feature)
    assert files, f"shared/{feature} is empty?"
    assert _violations(files, (ADAPTERS, COMPOSITION, API, SERVICES, "functions", "devhost", *OUTSIDE_WORLD)) == []


@pytest.mark.parametrize("feature", FEATURES)
def test_features_depend_one_way(feature: str) -> None:
    later = tuple(f"shared.{name}" for name in FEATURES[FEATURES.index(feature) + 1 :])
    assert _violations(_sources(SHARED / feature), later) == []


def test_the_kernel_depends_on_no_feature() -> None:
    """Top-level modules of ``shared`` (clock, messaging, urns, telemetry, settings...) sit under everything."""
    kernel = [path for path in SHARED.glob("*.py") if path.name not in ("__init__.py", "services.py")]
    assert kernel
    features = (f"shared.{name}" for name in FEATURES)
    forbidden = (ADAPTERS, COMPOSITION, API, SERVICES, "functions", *features, *OUTSIDE_WORLD)
    assert _violations(kernel, forbidden) == []


def test_the_api_never_reaches_an_adapter() -> None:
    """Routes get one typed dependency (the use cases) and never see how they are built."""
    assert _violations(_sources(SHARED / "api"), (ADAPTERS, COMPOSITION)) == []


def test_the_use_cases_hold_no_store() -> None:
    """``shared.services`` names the use cases; nothing in it can reach a store, a client or a route."""
    assert _violations([SHARED / "services.py"], (ADAPTERS, COMPOSITION, API, "functions", *OUTSIDE_WORLD)) == []


def test_only_the_composition_root_imports_adapters() -> None:
    app = _sources(REPO / "function_app.py", REPO / "functions", SHARED)
    outside_root = [path for path in app if not _within(_module_name(path), COMPOSITION, ADAPTERS)]
    assert _violations(outside_root, (ADAPTERS,)) == []


def test_adapters_never_reach_back_up() -> None:
    """Adapters implement ports; they do not call routes, triggers or the root that builds them."""
    assert _violations(_sources(SHARED / "adapters"), (COMPOSITION, API, "functions")) == []


def test_the_rule_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """The reader itself: an import inside a function, or a relative one, is still found."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from ..adapters import tables\n    import aiohttp\n")
    found = [module for _, module in _imports(probe, package="shared.events")]
    assert found == ["shared.adapters", "shared.adapters.tables", "aiohttp"]
