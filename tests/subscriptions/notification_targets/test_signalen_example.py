"""examples/signalen/README.md run as written against devhost started as a process (only the port,
the state file and the resource differ), the example script included."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.support.devhost_process import devhost_process, run_as_written, shell_blocks

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "signalen"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def devhost(azurite, settings, tmp_path_factory):
    state = tmp_path_factory.mktemp("signalen-devhost")
    with devhost_process(azurite, settings, state) as process:
        resource = f"urn:no:kommune:signalen-e2e{process.port}"
        process.env.update(
            {
                "HERALD_URL": process.url,
                "SIGNALEN_STATE": str(state / "signalen.json"),
                "SIGNALEN_RESOURCE": resource,
            }
        )
        yield process.port, process.env, resource, state


def run(block: str, port: int, env: dict[str, str], resource: str) -> str:
    return run_as_written(block, env, {"7071": str(port), "urn:no:kommune:signalen": resource}, timeout=120)


def eventually(check, seconds: float = 30.0):
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


def test_the_signalen_walkthrough_runs_as_written(devhost):
    port, env, resource, state = devhost
    admin, token, subscribe, report, outbox, follow, demo = shell_blocks(EXAMPLE / "README.md")

    answers = run(admin, port, env, resource)
    assert f'"resource":"{resource}"' in answers and answers.endswith('{"stored":3}')
    subscription = json.loads(run(token + subscribe, port, env, resource))
    assert subscription["status"] == "active" and "secret" not in subscription
    assert subscription["notification"]["notificationChannel"] == "EmailPreferred"
    assert subscription["resourceFilter"] == resource

    run(token + report, port, env, resource)
    reports = json.loads((state / "signalen.json").read_text())
    assert reports["signals"]["SIG-1"]["status"] == "in_progress"

    def kari_emailed() -> list[dict]:
        messages = json.loads(run(token + outbox, port, env, resource))["messages"]
        return [m for m in messages if m["to"] == "kari.nordmann@example.com" and "SIG-1 " in m["subject"]]

    [email] = eventually(kari_emailed)
    assert email["subject"] == "Your report SIG-1 is now: In progress"
    assert "<p>Dear Kari Nordmann,</p>" in email["body"] and "<b>Broken street light</b> (Storgata 1)" in email["body"]
    assert email["content_type"] == "Html"

    followed = eventually(lambda: "Delivered" in (out := run(token + follow, port, env, resource)) and out)
    assert "SIG-1-2 email kari.nordmann@example.com: Delivered" in followed

    output = run(token + demo, port, env, resource)
    assert "subscription sub_" in output and ": active" in output
    assert "SIG-2-2 email kari.nordmann@example.com: Delivered" in output
    assert "SIG-2-3 email kari.nordmann@example.com: Delivered" in output
    assert "SIG-3-2 sms +4741234567: Delivered" in output
    assert "SIG-4-2 email 22037510045: Failed_RecipientReserved" in output
    assert "outbox sms to +4741234567: Report SIG-3 (Overflowing bin): In progress. A crew has been assigned." in output
    # The creation events notified nobody, and each status change notified once.
    messages = json.loads(run(token + outbox, port, env, resource))["messages"]
    # (The devhost shares Azurite with other tests, whose leftover orders its workers may send too.)
    ours = [m for m in messages if re.match(r"^(Your report|Report) SIG-\d+ ", m["subject"] or m["body"])]
    ours = [m for m in ours if m["to"] in ("kari.nordmann@example.com", "+4741234567")]
    assert len(ours) == 4, json.dumps(ours, indent=1)
