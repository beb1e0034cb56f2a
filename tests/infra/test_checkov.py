"""checkov (framework bicep) passes on infra/ with no failed check and no parsing error.

checkov runs from its own virtualenv because it pins many packages the app also uses:
``make checkov-venv`` (python3 -m venv .venv-checkov && .venv-checkov/bin/pip install -r requirements.checkov.txt).
The test uses ``$CHECKOV`` if set, else ``.venv-checkov/bin/checkov``, else ``checkov`` on PATH; it skips when
none exists unless ``HERALD_REQUIRE_CHECKOV=1`` (CI), where it fails instead. Skips inside the Bicep files
must carry a reason: ``// checkov:skip=CKV_...:reason``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from typing import Any

import pytest

from tests.infra.bicep import INFRA, ROOT, bicep_files

SKIP_COMMENT = re.compile(r"checkov:skip=([A-Z0-9_]+)(:?)(.*)")


def _checkov() -> str | None:
    candidates = [os.environ.get("CHECKOV"), str(ROOT / ".venv-checkov" / "bin" / "checkov"), shutil.which("checkov")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def test_every_checkov_skip_has_a_reason() -> None:
    for path in bicep_files():
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = SKIP_COMMENT.search(line)
            if match:
                assert match.group(2) == ":" and len(match.group(3).strip()) > 15, (
                    f"{path.relative_to(ROOT)}:{number}: checkov skip {match.group(1)} needs a reason"
                )


class Run:
    """checkov running in the background from the start of the session (tests/infra/conftest.py): it spends
    a minute or more mostly starting up, which the tests before this one hide."""

    def __init__(self, checkov: str) -> None:
        # Files, not pipes: checkov's report may outgrow a pipe's buffer before anyone reads it.
        self.stdout = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed in stop)
        self.stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115
        env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
        command = [checkov, "-d", str(INFRA), "--framework", "bicep", "--output", "json", "--quiet", "--compact"]
        command.append("--skip-download")
        self.process = subprocess.Popen(command, stdout=self.stdout, stderr=self.stderr, text=True, env=env, cwd=ROOT)

    def result(self, timeout: float) -> subprocess.CompletedProcess[str]:
        code = self.process.wait(timeout=timeout)
        self.stdout.seek(0)
        self.stderr.seek(0)
        return subprocess.CompletedProcess(self.process.args, code, self.stdout.read(), self.stderr.read())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.stdout.close()
        self.stderr.close()


running: dict[str, Run] = {}


def start_in_background() -> None:
    checkov = _checkov()
    if checkov is not None and "run" not in running:
        running["run"] = Run(checkov)


def test_checkov_passes_on_infra() -> None:
    checkov = _checkov()
    if checkov is None:
        if os.environ.get("HERALD_REQUIRE_CHECKOV") == "1":
            pytest.fail("checkov is required (HERALD_REQUIRE_CHECKOV=1) but not installed: run `make checkov-venv`")
        pytest.skip("checkov not installed: run `make checkov-venv` (creates .venv-checkov)")
    run = running.pop("run", None) or Run(checkov)
    try:
        completed = run.result(timeout=600)
    finally:
        run.stop()
    try:
        report: Any = json.loads(completed.stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"checkov printed no JSON (exit {completed.returncode}):\n{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}"
        )
    reports = report if isinstance(report, list) else [report]
    failed = [
        f"{check['check_id']} {check['resource']} ({check['file_path']}:{check['file_line_range'][0]})"
        for item in reports
        for check in item.get("results", {}).get("failed_checks", [])
    ]
    parsing_errors = [error for item in reports for error in item.get("results", {}).get("parsing_errors", [])]
    summary = [item.get("summary", {}) for item in reports]
    assert not parsing_errors, f"checkov could not parse: {parsing_errors}"
    assert sum(s.get("parsing_errors", 0) for s in summary) == 0, f"checkov parsing errors: {summary}"
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)
    assert sum(s.get("passed", 0) for s in summary) > 10, f"checkov checked almost nothing: {summary}"
