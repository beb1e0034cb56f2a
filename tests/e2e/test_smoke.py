"""The smoke test run as a user runs it after deploying (`make smoke`, `python -m smoke`), against devhost
started as a process, so the script stays true to the API."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from smoke.receiver import LoopbackReceiver
from tests.support.azurite import free_port
from tests.support.devhost_process import DevhostProcess, devhost_token, open_resource

REPO = Path(__file__).resolve().parents[2]
SCOPES = "events.publish events.read events.subscribe notifications.order"
STEPS = ["health", "policy", "cursor", "publish", "read back", "subscribe", "validated", "push", "unsubscribe"]
STEPS += ["order email", "delivered"]
LINE = re.compile(r"^(ok|FAIL)\s+(\S+(?: \S+)?)\s+\d+\.\d\ds  (.*)$")
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def herald(devhost: DevhostProcess) -> DevhostProcess:
    return devhost


def steps(stdout: str) -> list[tuple[str, str, str]]:
    """(outcome, step, detail) of every step line the smoke test printed."""
    return [match.groups() for match in map(LINE.match, stdout.splitlines()) if match]


def python_smoke(herald: DevhostProcess, *args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "smoke", "--url", url or herald.url, "--wait", "30", *args]
    return subprocess.run(command, cwd=REPO, env=herald.env, capture_output=True, text=True, timeout=240)


def subscriptions(herald: DevhostProcess, token: str, resource: str) -> list[dict]:
    """The token's subscriptions to the resource, as GET /api/v1/subscriptions lists them."""
    request = urllib.request.Request(f"{herald.url}/api/v1/subscriptions", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        listed = json.loads(response.read())["subscriptions"]
    return [subscription for subscription in listed if subscription["resourceFilter"] == resource]


def test_make_smoke_passes_every_step_against_devhost(herald):
    """With an admin token the run gives its resource a policy, pushes to its own receiver and checks the signature."""
    subject = "org:991825827"
    token = devhost_token(herald.env, subject, SCOPES)
    admin = devhost_token(herald.env, "system:smoke-admin", "admin")
    resource = f"urn:smoke:herald:{uuid.uuid4().hex[:8]}"
    command = ["make", "--no-print-directory", "-o", ".venv/.installed", "smoke", f"PY={sys.executable}"]
    command += [f"URL={herald.url}", f"TOKEN={token}", f"ADMIN_TOKEN={admin}", f"RESOURCE={resource}"]
    run = subprocess.run(command, cwd=REPO, env=herald.env, capture_output=True, text=True, timeout=240)

    assert run.returncode == 0, run.stdout + run.stderr
    printed = steps(run.stdout)
    assert [(outcome, step) for outcome, step, _ in printed] == [("ok", step) for step in STEPS], run.stdout
    detail = {step: text for _, step, text in printed}
    assert detail["policy"] == f"put: {subject} publishes to {resource} and reads and subscribes to all of it"
    assert "-read read through the cursor taken before publishing" in detail["read back"]
    assert detail["push"].endswith("signature verified")
    assert detail["delivered"].startswith("Delivered to smoke@example.com")
    assert re.search(r"^all 11 steps passed in \d+\.\ds$", run.stdout, re.M)
    assert token not in run.stdout + run.stderr, "make must not echo the tokens"
    assert subscriptions(herald, token, resource) == [], "the run deletes its subscription"


def test_smoke_with_a_users_endpoint_checks_herald_s_delivery_log(herald):
    """The Azure way: a resource that already has a policy, the user's own endpoint and email address."""
    token = devhost_token(herald.env, "org:910825585", SCOPES)
    resource = f"urn:smoke:herald:{uuid.uuid4().hex[:8]}"
    open_resource(herald.port, herald.env, resource)
    with LoopbackReceiver() as endpoint:
        run = python_smoke(
            herald,
            *("--token", token, "--resource", resource),
            *("--endpoint", endpoint.url, "--email", "ola.nordmann@example.com"),
        )
        pushed = re.search(r"(smoke-\S+-push) delivered to", run.stdout)
        assert pushed and endpoint.push_of(pushed.group(1)) is not None, run.stdout

    assert run.returncode == 0, run.stdout + run.stderr
    printed = steps(run.stdout)
    assert [step for outcome, step, _ in printed if outcome == "ok"] == [s for s in STEPS if s != "policy"]
    detail = {step: text for _, step, text in printed}
    assert detail["push"].endswith("per Herald's delivery log")
    assert detail["delivered"].startswith("Delivered to ola.nordmann@example.com")
    assert subscriptions(herald, token, resource) == []


def test_a_token_without_a_scope_fails_at_the_step_that_needs_it(herald):
    token = devhost_token(herald.env, "org:991825827", "events.read events.subscribe notifications.order")
    admin = devhost_token(herald.env, "system:smoke-admin", "admin")
    run = python_smoke(herald, "--token", token, "--admin-token", admin, "--resource", "urn:smoke:herald:scopes")

    assert run.returncode == 1
    assert [(outcome, step) for outcome, step, _ in steps(run.stdout)] == [
        ("ok", "health"),
        ("ok", "policy"),
        ("ok", "cursor"),
        ("FAIL", "publish"),
    ], run.stdout
    assert "POST /api/v1/events answered 403: the token lacks the scope 'events.publish'" in run.stdout
    assert "check: the token's scopes: it lacks events.publish" in run.stdout


def test_a_resource_without_a_policy_fails_saying_the_policy_is_missing(herald):
    token = devhost_token(herald.env, "org:991825827", SCOPES)
    resource = f"urn:smoke:herald:nopolicy{uuid.uuid4().hex[:8]}"
    run = python_smoke(herald, "--token", token, "--resource", resource)

    assert run.returncode == 1
    assert [(outcome, step) for outcome, step, _ in steps(run.stdout)] == [
        ("ok", "health"),
        ("ok", "cursor"),
        ("FAIL", "publish"),
    ]
    assert f"check: the policy is missing: no policy of {resource} lets org:991825827 publish" in run.stdout
    assert "--admin-token" in run.stdout


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("{herald}/herald", "answered 404"),  # a wrong base path: something answers, but not Herald's API
        ("http://127.0.0.1:{free}", "is reachable from here"),  # nothing listens
    ],
)
def test_a_url_that_is_not_herald_fails_at_health(herald, url, says):
    token = devhost_token(herald.env, "org:991825827", SCOPES)
    run = python_smoke(herald, "--token", token, url=url.format(herald=herald.url, free=free_port()))

    assert run.returncode == 1
    assert [(outcome, step) for outcome, step, _ in steps(run.stdout)] == [("FAIL", "health")], run.stdout
    assert says in run.stdout
    assert "check: that http://127.0.0.1:" in run.stdout


def test_outside_devhost_the_smoke_test_asks_for_an_endpoint_and_an_email_address():
    run = subprocess.run(
        [sys.executable, "-m", "smoke", "--url", "https://func-herald.example.net", "--token", "t"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "give --endpoint https://" in run.stderr
