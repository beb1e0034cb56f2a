"""The console's front-end libraries in console/vendor/ are the pinned npm packages' files, unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENDOR = REPO / "console" / "vendor"
NODE_MODULES = REPO / "node_modules"

# console/vendor/<name> <- node_modules/<path>: what `make console-vendor` copies.
VENDORED = {
    "htm-preact.mjs": "htm/preact/standalone.module.js",
    "uplot.mjs": "uplot/dist/uPlot.esm.js",
    "uplot.min.css": "uplot/dist/uPlot.min.css",
    "oidc-client-ts.min.js": "oidc-client-ts/dist/browser/oidc-client-ts.min.js",
    "htm.LICENSE.txt": "htm/LICENSE",
    "uplot.LICENSE.txt": "uplot/LICENSE",
    "oidc-client-ts.LICENSE.txt": "oidc-client-ts/LICENSE",
    # bundled into oidc-client-ts's browser build
    "jwt-decode.LICENSE.txt": "jwt-decode/LICENSE",
}
PACKAGES = ("htm", "uplot", "oidc-client-ts")


def pinned() -> dict[str, str]:
    dependencies: dict[str, str] = json.loads((REPO / "package.json").read_text())["devDependencies"]
    return {name: dependencies[name] for name in PACKAGES}


def test_the_libraries_are_pinned_to_exact_versions() -> None:
    lock = json.loads((REPO / "package-lock.json").read_text())["packages"]
    for name, version in pinned().items():
        assert version[0].isdigit(), f"{name} {version}: pin an exact version, the copies are committed"
        assert lock[f"node_modules/{name}"]["version"] == version, name


@pytest.mark.parametrize("name", sorted(VENDORED))
def test_each_vendored_file_is_the_package_file(name: str) -> None:
    vendored = VENDOR / name
    assert vendored.is_file(), f"console/vendor/{name} is missing: run `make console-vendor`"
    source = NODE_MODULES / VENDORED[name]
    if not NODE_MODULES.is_dir():
        pytest.skip("node_modules is absent, nothing to compare with (`make setup` installs it)")
    assert source.is_file(), f"node_modules/{VENDORED[name]} is missing: run `make setup`"
    assert vendored.read_bytes() == source.read_bytes(), f"console/vendor/{name} differs: run `make console-vendor`"


def test_installed_versions_are_the_pinned_ones() -> None:
    if not NODE_MODULES.is_dir():
        pytest.skip("node_modules is absent, nothing to compare with (`make setup` installs it)")
    for name, version in pinned().items():
        installed = json.loads((NODE_MODULES / name / "package.json").read_text())["version"]
        assert installed == version, f"node_modules has {name} {installed}, package.json pins {version}: `make setup`"


def test_the_readme_names_each_version_and_nothing_else_is_vendored() -> None:
    readme = (VENDOR / "README.md").read_text()
    for name, version in pinned().items():
        assert f"| {version} |" in readme and name in readme, f"console/vendor/README.md does not name {name} {version}"
    assert {path.name for path in VENDOR.iterdir()} == set(VENDORED) | {"README.md"}
