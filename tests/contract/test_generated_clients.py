"""Clients generated from the document devhost serves, the way API users make them (docs/api.md).

openapi-python-client's Python client publishes (structured and batch), reads every page by following
the Link header, subscribes a local webhook and sees it become active, and reads its deliveries.
openapi-typescript's types type-check a program that uses them (tsc). The generated code lives in a
temporary folder, never in the repository."""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import openapi_python_client
import pytest

from tests.e2e.test_readme import devhost_token, open_resource
from tests.support.devhost_process import DevhostProcess, devhost_process

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "herald_generated_client"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def herald(azurite, settings, tmp_path_factory) -> Iterator[DevhostProcess]:
    with devhost_process(azurite, settings, tmp_path_factory.mktemp("devhost-clients")) as process:
        yield process


@pytest.fixture(scope="module")
def served(herald: DevhostProcess, tmp_path_factory) -> Path:
    """The document as devhost serves it."""
    with urllib.request.urlopen(f"{herald.url}/api/v1/openapi.json", timeout=10) as response:
        body = response.read()
    path = tmp_path_factory.mktemp("document") / "openapi.json"
    path.write_bytes(body)
    return path


def python_client_templates(folder: Path) -> Path:
    """openapi-python-client's endpoint template, with one check mended.

    For an operation with several request bodies (publish: one event, or a batch) the template picks
    the body with ``isinstance(body, list[CloudEvent])``, which Python refuses (a parameterized generic);
    the mended line asks ``isinstance(body, list)``. Without it every call of the generated publish raises
    TypeError. docs/api.md tells users the same."""
    template = Path(openapi_python_client.__file__).parent / "templates" / "endpoint_module.py.jinja"
    text = template.read_text()
    broken = "isinstance(body, {{body.prop.get_type_string(no_optional=True) | as_unembedded_code }})"
    assert broken in text, "openapi-python-client's template changed: check whether the mend is still needed"
    folder.mkdir()
    mended = "isinstance(body, {{body.prop.get_instance_type_string() | as_unembedded_code }})"
    (folder / template.name).write_text(text.replace(broken, mended))
    return folder


@pytest.fixture(scope="module")
def client_package(served: Path, tmp_path_factory) -> Iterator[ModuleType]:
    folder = tmp_path_factory.mktemp("python-client")
    config = folder / "config.json"
    config.write_text(json.dumps({"package_name_override": PACKAGE, "post_hooks": []}))
    command = [str(Path(sys.executable).with_name("openapi-python-client")), "generate", "--path", str(served)]
    command += ["--output-path", str(folder / PACKAGE), "--meta", "none", "--config", str(config)]
    command += ["--custom-template-path", str(python_client_templates(folder / "templates"))]
    generated = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert generated.returncode == 0, generated.stdout + generated.stderr
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def generated(module: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{module}")


def test_every_generated_python_module_imports(client_package):
    folder = Path(client_package.__file__).parent
    for path in sorted(folder.rglob("*.py")):
        module = ".".join(path.relative_to(folder.parent).with_suffix("").parts).removesuffix(".__init__")
        importlib.import_module(module)


async def poll(check: Callable[[], Awaitable[Any]], what: str, seconds: float = 30) -> Any:
    """``check``'s first truthy answer, asked every 0.2 s."""
    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {seconds} s")
        await asyncio.sleep(0.2)


async def test_python_client_publishes_reads_subscribes_and_reads_deliveries(herald, client_package, receiver):
    models = generated("models")
    publish_events = generated("api.events.publish_events")
    read_events = generated("api.events.read_events")
    create_subscription = generated("api.subscriptions.create_subscription")
    get_subscription = generated("api.subscriptions.get_subscription")
    deliveries = generated("api.subscriptions.deliveries")

    resource = f"urn:contract:herald:{uuid.uuid4().hex[:8]}"
    open_resource(herald.port, herald.env, resource)
    token = devhost_token(herald.env, "org:991825827", "events.publish events.read events.subscribe")
    client = client_package.AuthenticatedClient(base_url=herald.url, token=token, raise_on_unexpected_status=True)

    def event(name: str) -> Any:
        return models.CloudEvent(
            specversion="1.0", id=name, source="urn:contract:test", type_="no.example.case.created", resource=resource
        )

    # Publish: one event (structured mode), then a batch.
    one = await publish_events.asyncio_detailed(client=client, body=event("case-1"))
    assert one.status_code == 202
    assert isinstance(one.parsed, models.PublishAccepted) and one.parsed.accepted == ["case-1"]
    batch = await publish_events.asyncio_detailed(client=client, body=[event(f"case-{i}") for i in (2, 3, 4, 5)])
    assert batch.status_code == 202 and batch.parsed.stored == 4
    refused = await publish_events.asyncio_detailed(client=client, body=[event("")])
    assert refused.status_code == 400
    assert isinstance(refused.parsed, models.Problem) and refused.parsed.errors[0].attribute == "id"

    # Read two at a time, following each page's Link: rel="next" until an empty page.
    seen: list[str] = []
    after = None
    for _ in range(10):
        kwargs = {"after": after} if after else {}
        page = await read_events.asyncio_detailed(client=client, resource=resource, size=2, **kwargs)
        assert page.status_code == 200
        assert all(isinstance(e, models.CloudEvent) for e in page.parsed)
        seen += [e.id for e in page.parsed]
        link = re.fullmatch(r'<([^>]+)>; rel="next"', page.headers["link"])
        assert link, page.headers["link"]
        after = parse_qs(urlsplit(link.group(1)).query)["after"][0]
        if not page.parsed:
            break
    assert seen == [f"case-{i}" for i in range(1, 6)]

    # Subscribe a local webhook; its answer to the validation event makes the subscription active.
    request = models.SubscriptionRequest(resource_filter=resource, end_point=receiver.url("hook"))
    created = await create_subscription.asyncio_detailed(client=client, body=request)
    assert created.status_code == 201, created.content
    subscription = created.parsed
    assert isinstance(subscription, models.SubscriptionView)
    assert subscription.status == "pending" and subscription.secret.startswith("whsec_")

    async def active() -> bool:
        found = await get_subscription.asyncio(client=client, subscription_id=subscription.id)
        return found.status == "active"

    await poll(active, "the subscription becoming active")

    # A new event is pushed, and the delivery log shows the attempt.
    await publish_events.asyncio_detailed(client=client, body=event("case-6"))

    async def delivered() -> list[Any]:
        log = await deliveries.asyncio(client=client, subscription_id=subscription.id)
        assert isinstance(log, models.DeliveryPage)
        return [d for d in log.deliveries if d.event_id == "case-6" and d.status_code == 200]

    attempts = await poll(delivered, "the delivery of case-6")
    assert attempts[0].outcome and attempts[0].attempt == 1
    assert any(b'"case-6"' in post.body for post in receiver.posts("hook"))


TYPESCRIPT_USE = """
import type { components, operations, paths } from "./herald";

type CloudEvent = components["schemas"]["CloudEvent"];
type Publish = operations["publish_events"];
type Read = paths["/api/v1/events"]["get"];

const event: CloudEvent = {
  specversion: "1.0", id: "case-1", source: "urn:x", type: "no.example", resource: "urn:x:y", data: { n: 1 },
};
const batch: NonNullable<Publish["requestBody"]>["content"]["application/cloudevents-batch+json"] = [event];
const accepted: Publish["responses"][202]["content"]["application/json"] = { accepted: ["case-1"], stored: 1, duplicates: 0 };
const problem: Publish["responses"][429]["content"]["application/problem+json"] = {
  type: "urn:herald:problem:rate-limited", title: "Too Many Requests", status: 429, detail: "retry in 2 s",
};
const retryAfter: Publish["responses"][429]["headers"]["Retry-After"] = 2;
const binary: NonNullable<Publish["parameters"]["header"]>["ce-specversion"] = "1.0";
const page: Read["responses"][200]["content"]["application/cloudevents-batch+json"] = [event];
const next: Read["responses"][200]["headers"]["Link"] = '<http://127.0.0.1/api/v1/events?after=x>; rel="next"';
// @ts-expect-error Herald never answers 422
const phantom: Publish["responses"][422] = undefined;
// @ts-expect-error resource is required
const incomplete: CloudEvent = { specversion: "1.0", id: "x", source: "urn:x", type: "t" };
export const used = [batch, accepted, problem, retryAfter, binary, page, next, phantom, incomplete];
"""


def test_typescript_types_type_check_a_program_using_them(served, tmp_path):
    bin_ = REPO / "node_modules" / ".bin"
    generate = [str(bin_ / "openapi-typescript"), str(served), "--output", str(tmp_path / "herald.ts")]
    made = subprocess.run(generate, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stdout + made.stderr
    (tmp_path / "use.ts").write_text(TYPESCRIPT_USE)
    check = [str(bin_ / "tsc"), "--noEmit", "--strict", "--target", "es2022", "--module", "es2022", "use.ts"]
    checked = subprocess.run(check, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
