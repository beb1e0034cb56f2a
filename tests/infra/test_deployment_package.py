"""What `azd deploy` uploads (.funcignore) and what `pip install .` builds (pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pathspec
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.infra.bicep import ROOT

# azd packages the service folder minus what .funcignore matches, with gitignore rules (and only
# .funcignore's rules when the file exists).
MUST_SHIP = [
    "function_app.py",
    "host.json",
    "requirements.txt",
    "functions/__init__.py",
    "functions/inbound.py",
    "shared/__init__.py",
    "shared/messaging.py",
    "shared/events/__init__.py",
]
MUST_NOT_SHIP = [
    "tests/infra/test_consistency.py",
    "devhost/__main__.py",
    "bench/run.py",
    "docs/deploy.md",
    "infra/main.bicep",
    "smoke/runner.py",
    ".mypy_cache/3.11/shared/messaging.data.json",
    ".pytest_cache/v/cache/nodeids",
    ".ruff_cache/0.6.0/123",
    ".hypothesis/examples/abc",
    "__pycache__/function_app.cpython-311.pyc",
    "shared/__pycache__/queues.cpython-311.pyc",
    "functions/__pycache__/inbound.cpython-311.pyc",
    ".venv/bin/python",
    "local.settings.json",
    "build/lib/shared/messaging.py",
    "herald.egg-info/PKG-INFO",
]


def _funcignore() -> pathspec.GitIgnoreSpec:
    return pathspec.GitIgnoreSpec.from_lines((ROOT / ".funcignore").read_text().splitlines())


@pytest.mark.parametrize("path", MUST_SHIP)
def test_app_files_ship(path: str) -> None:
    assert not _funcignore().match_file(path), f"{path} is left out of the deployment package"


@pytest.mark.parametrize("path", MUST_NOT_SHIP)
def test_tools_tests_and_caches_stay_out(path: str) -> None:
    assert _funcignore().match_file(path), f"{path} would be uploaded to Azure"


def test_every_python_file_of_the_app_ships() -> None:
    spec = _funcignore()
    for package in ("shared", "functions"):
        for path in (ROOT / package).rglob("*.py"):
            relative = path.relative_to(ROOT).as_posix()
            if "__pycache__" not in relative:
                assert not spec.match_file(relative), relative


def test_the_console_ships_with_its_vendored_libraries() -> None:
    """The function app serves console/ from the package (shared/api/console.py): no npm or CDN in Azure."""
    spec = _funcignore()
    console = ROOT / "console"
    files = [path.relative_to(ROOT).as_posix() for path in console.rglob("*") if path.is_file()]
    expected = {"console/index.html", "console/vendor/htm-preact.mjs", "console/vendor/uplot.mjs"}
    expected |= {"console/vendor/uplot.min.css", "console/vendor/oidc-client-ts.min.js"}
    assert expected <= set(files)
    assert [path for path in files if spec.match_file(path)] == []


def test_a_wheel_builds_offline_with_the_app_and_its_requirements(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "requirements.txt", "function_app.py", "README.md"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, source / name)
    for package in ("shared", "functions"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("herald-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert "function_app.py" in names
    assert {"shared/__init__.py", "shared/messaging.py", "functions/__init__.py", "functions/inbound.py"} <= names
    assert not {
        n for n in names if n.split("/", 1)[0] in ("tests", "devhost", "bench", "smoke", "infra", "docs", "examples")
    }
    required = {
        _requirement(line.split(":", 1)[1]) for line in metadata.splitlines() if line.startswith("Requires-Dist:")
    }
    expected = {
        _requirement(line.split("#", 1)[0])
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.split("#", 1)[0].strip()
    }
    assert required == expected


def _requirement(text: str) -> tuple[str, frozenset[str], str]:
    requirement = Requirement(text.strip())
    return canonicalize_name(requirement.name), frozenset(requirement.extras), str(requirement.specifier)
