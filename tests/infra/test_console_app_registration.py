"""infra/scripts/console-app-registration.sh registers the console and prepares the API, idempotently.

``az`` and ``azd`` are fakes on PATH. The fake ``az`` keeps a small directory (applications, service
principals) in a JSON file, answers exactly the queries the script asks (an unknown one fails the
run, so a changed script cannot pass unnoticed), applies Graph PATCHes by replacing the properties
sent, and records every call.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.infra.bicep import INFRA

SCRIPT = INFRA / "scripts" / "console-app-registration.sh"
TENANT = "11111111-2222-3333-4444-555555555555"
HOST = "https://func-herald-abc.azurewebsites.net"
SCOPES = ["events.publish", "events.read", "events.subscribe", "notifications.order", "admin"]

FAKE_AZ = r"""
import json, os, re, sys, uuid

state_path = os.path.join(os.environ["FAKE_STATE"], "directory.json")
with open(os.path.join(os.environ["FAKE_STATE"], "calls"), "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\n")
with open(state_path) as f:
    state = json.load(f)

def save():
    with open(state_path, "w") as f:
        json.dump(state, f, indent=1)

def option(name, default=None):
    args = sys.argv[1:]
    return args[args.index(name) + 1] if name in args else default

def options_after(name):
    args = sys.argv[1:]
    values = []
    for arg in args[args.index(name) + 1:]:
        if arg.startswith("--"):
            break
        values.append(arg)
    return values

def app(app_id):
    for candidate in state["apps"]:
        if candidate["appId"] == app_id:
            return candidate
    sys.exit(f"no application {app_id}")

def get(document, path):
    for part in path.split("."):
        document = document.get(part) if isinstance(document, dict) else None
    return document

def query(document, q):
    if q is None:
        return document
    m = re.fullmatch(r"(.+) \|\| `\[\]`", q)
    if m:
        return get(document, m.group(1)) or []
    m = re.fullmatch(r"\[\?resourceAppId=='(.+)'\]\.resourceAccess\[\]\.id", q)
    if m:
        return [a["id"] for r in document if r["resourceAppId"] == m.group(1) for a in r["resourceAccess"]]
    m = re.fullmatch(r"(.+)\[\?(\w+)=='(.+)'\]\.(\w+)(\[\]| \| \[0\])?", q)
    if m:
        path, key, value, field, tail = m.groups()
        items = [item for item in get(document, path) or [] if item.get(key) == value]
        if tail == "[]":
            return [x for item in items for x in item[field]]
        picked = [item[field] for item in items]
        return (picked or [None])[0] if tail else picked
    m = re.fullmatch(r"(.*)\[\]\.(\w+)", q)
    if m:
        items = document if m.group(1) == "" else get(document, m.group(1)) or []
        return [item[m.group(2)] for item in items]
    if re.fullmatch(r"[\w.]+", q):
        return get(document, q)
    sys.exit(f"fake az: unexpected query {q!r}")

def out(value):
    if option("-o") == "json":
        if value is not None:
            print(json.dumps(value, indent=2))
    elif isinstance(value, list):
        for item in value:
            print(item)
    elif value is not None:
        print(value)

args = sys.argv[1:]
verb = " ".join(a for a in args[:4] if not a.startswith("-"))
if verb.startswith("account show"):
    out(query({"tenantId": state["tenant"]}, option("--query")))
elif verb.startswith("ad app list"):
    name = re.fullmatch(r"displayName eq '(.+)'", option("--filter")).group(1)
    out(query([a for a in state["apps"] if a["displayName"] == name], option("--query")))
elif verb.startswith("ad app create"):
    new = {"appId": str(uuid.uuid4()), "displayName": option("--display-name"), "identifierUris": [],
           "api": {"requestedAccessTokenVersion": None, "oauth2PermissionScopes": [], "preAuthorizedApplications": [],
                   "knownClientApplications": [], "acceptMappedClaims": None},
           "appRoles": [], "optionalClaims": None, "spa": {"redirectUris": []}, "requiredResourceAccess": [],
           "extensionProperties": []}
    state["apps"].append(new); save(); out(query(new, option("--query")))
elif verb.startswith("ad app show"):
    out(query(app(option("--id")), option("--query")))
elif verb.startswith("ad app update"):
    target = app(option("--id"))
    if "--identifier-uris" in args:
        target["identifierUris"] = options_after("--identifier-uris")
    if option("--set") == "api.requestedAccessTokenVersion=2":
        target["api"]["requestedAccessTokenVersion"] = 2
    save()
elif verb.startswith("ad app permission list"):
    out(query(app(option("--id"))["requiredResourceAccess"], option("--query")))
elif verb.startswith("ad app permission add"):
    target, api = app(option("--id")), option("--api")
    access = [{"id": p.split("=")[0], "type": p.split("=")[1]} for p in options_after("--api-permissions")]
    target["requiredResourceAccess"].append({"resourceAppId": api, "resourceAccess": access}); save()
elif verb.startswith("ad sp show"):
    if option("--id") not in state["sps"]:
        sys.exit(3)
    print("sp-" + option("--id"))
elif verb.startswith("ad sp create"):
    state["sps"].append(option("--id")); save(); print("sp-" + option("--id"))
elif verb.startswith("rest"):
    method, url = option("--method"), option("--url")
    m = re.fullmatch(r"https://graph\.microsoft\.com/v1\.0/applications\(appId='(.+)'\)(/extensionProperties)?", url)
    if not m:
        sys.exit(f"fake az: unexpected url {url}")
    target = app(m.group(1))
    if m.group(2) and method == "GET":
        out(query({"value": target["extensionProperties"]}, option("--query")))
    elif m.group(2) and method == "POST":
        body = json.loads(option("--body"))
        body["name"] = "extension_" + target["appId"].replace("-", "") + "_" + body["name"]
        target["extensionProperties"].append(body); save()
    elif method == "PATCH":
        target.update(json.loads(option("--body"))); save()
    else:
        sys.exit(f"fake az: unexpected {method} {url}")
else:
    sys.exit(f"fake az: unexpected az {' '.join(args)}")
"""

FAKE_AZD = """#!/bin/sh
echo "azd $*" >> "$FAKE_STATE/calls-azd"
[ "$1 $2 $3" = "env get-value HERALD_API_URL" ] && [ -n "${FAKE_API_URL:-}" ] && { echo "$FAKE_API_URL"; exit 0; }
echo "ERROR: key not found" >&2; exit 1
"""

WRITES = ("create", "update", "POST", "PATCH", "add")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    if shutil.which("sh") is None:
        pytest.skip("no POSIX sh")
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    (bin_dir / "az").write_text(f"#!{sys.executable} -S\n{FAKE_AZ}")  # -S: starts faster
    (bin_dir / "azd").write_text(FAKE_AZD)
    for name in ("az", "azd"):
        (bin_dir / name).chmod(0o755)
    (state / "directory.json").write_text(json.dumps({"tenant": TENANT, "apps": [], "sps": []}))
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_STATE": str(state)}


def run(env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(SCRIPT), *args], env={**env, **extra}, capture_output=True, text=True, timeout=120, check=False
    )


def directory(env: dict[str, str]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((Path(env["FAKE_STATE"]) / "directory.json").read_text())
    return document


def named(env: dict[str, str], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(app for app in directory(env)["apps"] if app["displayName"] == name)
    return found


def calls(env: dict[str, str]) -> list[list[str]]:
    path = Path(env["FAKE_STATE"]) / "calls"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def writes(recorded: list[list[str]]) -> list[list[str]]:
    return [call for call in recorded if any(word in call for word in WRITES)]


def test_registers_the_console_and_prepares_the_api_once(env):
    completed = run(env, HOST)
    assert completed.returncode == 0, completed.stderr
    api, console = named(env, "herald-api"), named(env, "herald-console")
    api_id, console_id = api["appId"], console["appId"]

    assert api["identifierUris"] == [f"api://{api_id}"]
    assert api["api"]["requestedAccessTokenVersion"] == 2
    scopes = {scope["value"]: scope for scope in api["api"]["oauth2PermissionScopes"]}
    assert sorted(scopes) == sorted(SCOPES)
    assert scopes["admin"]["type"] == "Admin" and scopes["events.read"]["type"] == "User"
    roles = {role["value"]: role["allowedMemberTypes"] for role in api["appRoles"]}
    assert roles["admin"] == ["User", "Application"] and roles["events.publish"] == ["Application"]
    # Herald maps accounts itself: nothing in the directory (an extension a user might write) names them.
    assert api["extensionProperties"] == []
    assert api["optionalClaims"] is None

    assert console["spa"]["redirectUris"] == [f"{HOST}/console/"]
    [access] = console["requiredResourceAccess"]
    assert access["resourceAppId"] == api_id
    granted = {scope["id"]: scope["value"] for scope in api["api"]["oauth2PermissionScopes"]}
    assert sorted(granted[item["id"]] for item in access["resourceAccess"]) == sorted(SCOPES[:4])
    assert {item["type"] for item in access["resourceAccess"]} == {"Scope"}
    assert sorted(directory(env)["sps"]) == sorted([api_id, console_id])

    out = completed.stdout
    assert f"azd env set HERALD_CONSOLE_CLIENT_ID {console_id}" in out
    assert f"azd env set HERALD_CONSOLE_AUTHORITY https://login.microsoftonline.com/{TENANT}/v2.0" in out
    wanted = " ".join(["openid profile offline_access", *(f"api://{api_id}/{s}" for s in SCOPES[:4])])
    assert f'azd env set HERALD_CONSOLE_SCOPES "{wanted}"' in out
    assert "azd env set HERALD_AUTH_IDENTITIES mapped" in out
    assert "HERALD_AUTH_SUBJECT_CLAIM" not in out and "HERALD_AUTH_APPLICATIONS" not in out
    assert f"azd env set HERALD_AUTH_AUDIENCE api://{api_id}" in out
    assert f"az ad app permission admin-consent --id {console_id}" in out
    assert f"PUT {HOST}/api/v1/admin/identities/{TENANT}/<object id>" in out

    # A second run finds both applications and creates nothing.
    before = directory(env)
    first = len(calls(env))
    completed = run(env, HOST)
    assert completed.returncode == 0, completed.stderr
    assert writes(calls(env)[first:]) == []
    assert directory(env) == before
    assert "Found app registration herald-api" in completed.stderr
    assert "Found app registration herald-console" in completed.stderr


def test_another_environment_adds_its_redirect_uri_and_keeps_the_first(env):
    assert run(env, HOST).returncode == 0
    first = len(calls(env))
    other = "https://func-herald-xyz.azurewebsites.net/"
    completed = run(env, FAKE_API_URL=other)  # from the azd environment's HERALD_API_URL
    assert completed.returncode == 0, completed.stderr
    assert named(env, "herald-console")["spa"]["redirectUris"] == [f"{HOST}/console/", f"{other}console/"]
    assert [call[:2] for call in writes(calls(env)[first:])] == [["rest", "--method"]]


def test_an_existing_api_keeps_what_it_has(env):
    state = directory(env)
    cli = {"appId": "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "delegatedPermissionIds": ["read-id"]}
    state["apps"].append(
        {
            "appId": "3f2a9c1e-5b7d-4e8f-a1c2-d3e4f5a6b7c8",
            "displayName": "herald-api",
            "identifierUris": ["api://3f2a9c1e-5b7d-4e8f-a1c2-d3e4f5a6b7c8"],
            "api": {
                "requestedAccessTokenVersion": 2,
                "oauth2PermissionScopes": [{"id": "read-id", "value": "events.read", "type": "User"}],
                "preAuthorizedApplications": [cli],
                "knownClientApplications": [],
                "acceptMappedClaims": None,
            },
            "appRoles": [],
            "optionalClaims": {"idToken": [{"name": "upn"}], "accessToken": [], "saml2Token": []},
            "spa": {"redirectUris": []},
            "requiredResourceAccess": [],
            "extensionProperties": [],
        }
    )
    (Path(env["FAKE_STATE"]) / "directory.json").write_text(json.dumps(state))
    completed = run(env, HOST)
    assert completed.returncode == 0, completed.stderr
    api = named(env, "herald-api")
    assert [app["displayName"] for app in directory(env)["apps"]].count("herald-api") == 1
    assert api["api"]["preAuthorizedApplications"] == [cli]
    assert {"id": "read-id", "value": "events.read", "type": "User"} in api["api"]["oauth2PermissionScopes"]
    assert len(api["api"]["oauth2PermissionScopes"]) == 5
    assert api["optionalClaims"]["idToken"] == [{"name": "upn"}]


def test_refuses_two_apps_of_one_name_and_a_url_that_is_not_https(env):
    bad = run(env, "http://func-herald-abc.azurewebsites.net")
    assert bad.returncode != 0
    assert "is not https" in bad.stderr
    assert calls(env) == []
    missing = run(env)
    assert missing.returncode != 0
    assert "HERALD_API_URL" in missing.stderr

    state = directory(env)
    state["apps"] += [{"appId": f"id-{n}", "displayName": "herald-api"} for n in (1, 2)]
    (Path(env["FAKE_STATE"]) / "directory.json").write_text(json.dumps(state))
    twice = run(env, HOST)
    assert twice.returncode != 0
    assert "2 applications are named 'herald-api'" in twice.stderr
    assert writes(calls(env)) == []
