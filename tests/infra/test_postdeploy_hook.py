"""The postdeploy hook (sh) waits until the host lists the Event Grid functions, then provisions.

``az`` and ``azd`` are fakes on PATH: ``azd env`` reads and writes files, ``az functionapp function
show`` succeeds once a function is "listed", which the fake does after a given number of polls.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.infra.bicep import INFRA

HOOK = INFRA / "scripts" / "enable-event-subscriptions.sh"

FAKE_AZD = """#!/bin/sh
state="$FAKE_STATE"
echo "azd $*" >> "$state/calls"
case "$1 $2" in
  "env get-value") [ -f "$state/env/$3" ] || { echo "ERROR: key '$3' not found" >&2; exit 1; }; cat "$state/env/$3";;
  "env set") printf '%s' "$4" > "$state/env/$3";;
  "provision --no-prompt")
    # Record what the function app listed when the second provision ran.
    ls "$state/listed" > "$state/provisioned-with"; exit "${FAKE_PROVISION_EXIT:-0}";;
  *) echo "unexpected azd $*" >&2; exit 2;;
esac
"""

FAKE_AZ = """#!/bin/sh
state="$FAKE_STATE"
echo "az $*" >> "$state/calls"
[ "$1 $2 $3" = "functionapp function show" ] || { echo "unexpected az $*" >&2; exit 2; }
name=""; group=""; app=""
while [ $# -gt 0 ]; do
  case "$1" in
    --function-name) name="$2"; shift;;
    --resource-group) group="$2"; shift;;
    --name) app="$2"; shift;;
  esac
  shift
done
[ "$group/$app" = "rg-test/func-test" ] || { echo "wrong app $group/$app" >&2; exit 2; }
polls=$(($(cat "$state/polls-$name" 2>/dev/null || echo 0) + 1)); echo "$polls" > "$state/polls-$name"
if [ -n "${FAKE_LISTED_AFTER:-}" ] && [ "$polls" -ge "$FAKE_LISTED_AFTER" ]; then touch "$state/listed/$name"; fi
[ -f "$state/listed/$name" ] || { echo "ResourceNotFound: $name" >&2; exit 3; }
echo '{}'
"""


@pytest.fixture
def hook_env(tmp_path: Path) -> dict[str, str]:
    if shutil.which("sh") is None:
        pytest.skip("no POSIX sh")
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    for directory in (bin_dir, state / "env", state / "listed"):
        directory.mkdir(parents=True)
    for name, script in (("azd", FAKE_AZD), ("az", FAKE_AZ)):
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    env_values = {
        "HERALD_EVENT_GRID_FUNCTIONS": "email_delivery_report,sms_delivery_report",
        "AZURE_RESOURCE_GROUP": "rg-test",
        "AZURE_FUNCTION_APP_NAME": "func-test",
    }
    for key, value in env_values.items():
        (state / "env" / key).write_text(value)
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_STATE": str(state),
        "HERALD_FUNCTIONS_POLL_SECONDS": "0",
        "HERALD_FUNCTIONS_TIMEOUT_SECONDS": "30",
    }


def _run(env: dict[str, str], **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(HOOK)], env={**env, **extra}, capture_output=True, text=True, timeout=60, check=False
    )


def _state(env: dict[str, str]) -> Path:
    return Path(env["FAKE_STATE"])


def test_waits_until_every_function_is_listed_then_provisions(hook_env: dict[str, str]) -> None:
    completed = _run(hook_env, FAKE_LISTED_AFTER="3")
    assert completed.returncode == 0, completed.stderr
    state = _state(hook_env)
    assert (state / "provisioned-with").read_text().split() == ["email_delivery_report", "sms_delivery_report"]
    assert (state / "env" / "HERALD_EVENT_SUBSCRIPTIONS").read_text() == "true"
    calls = (state / "calls").read_text().splitlines()
    assert sum("--function-name sms_delivery_report" in call for call in calls) == 3
    assert calls.count("azd provision --no-prompt") == 1
    assert calls.index("azd provision --no-prompt") > max(i for i, c in enumerate(calls) if c.startswith("az "))
    assert "not listed yet: email_delivery_report, sms_delivery_report" in completed.stdout


def test_times_out_with_what_to_check_and_does_not_provision(hook_env: dict[str, str]) -> None:
    (_state(hook_env) / "listed" / "email_delivery_report").touch()
    completed = _run(hook_env, HERALD_FUNCTIONS_TIMEOUT_SECONDS="1", HERALD_FUNCTIONS_POLL_SECONDS="1")
    assert completed.returncode != 0
    message = completed.stderr
    assert (
        "Timed out after 1s waiting for function app func-test (resource group rg-test) to list: sms_delivery_report."
        in message
    )
    assert "az functionapp function list --resource-group rg-test --name func-test" in message
    assert "azd hooks run postdeploy" in message
    calls = (_state(hook_env) / "calls").read_text()
    assert "provision" not in calls
    assert not (_state(hook_env) / "env" / "HERALD_EVENT_SUBSCRIPTIONS").exists()


def test_skips_when_already_enabled(hook_env: dict[str, str]) -> None:
    (_state(hook_env) / "env" / "HERALD_EVENT_SUBSCRIPTIONS").write_text("true")
    completed = _run(hook_env)
    assert completed.returncode == 0, completed.stderr
    assert "already enabled" in completed.stdout
    calls = (_state(hook_env) / "calls").read_text().splitlines()
    assert calls == ["azd env get-value HERALD_EVENT_SUBSCRIPTIONS"]


def test_a_failed_provision_leaves_the_flag_off_for_the_next_run(hook_env: dict[str, str]) -> None:
    for name in ("email_delivery_report", "sms_delivery_report"):
        (_state(hook_env) / "listed" / name).touch()
    completed = _run(hook_env, FAKE_PROVISION_EXIT="1")
    assert completed.returncode != 0
    assert (_state(hook_env) / "env" / "HERALD_EVENT_SUBSCRIPTIONS").read_text() == "false"
