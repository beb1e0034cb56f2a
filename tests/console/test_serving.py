"""The console as a browser gets it from Herald: its files under /console with their types, a strict
Content-Security-Policy, revalidation by ETag, nothing outside console/, and config.json from the settings."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from shared.api import console
from shared.api.app import create_api
from shared.config import settings

REPO = Path(__file__).resolve().parents[2]
CONSOLE = REPO / "console"
DEVHOST_ISSUER = "http://127.0.0.1:7071/devhost"
ENTRA = "https://login.microsoftonline.com/8d1b3c44-0000-4000-8000-000000000001/v2.0"
CONSOLE_SETTINGS = ("HERALD_CONSOLE_AUTHORITY", "HERALD_CONSOLE_CLIENT_ID", "HERALD_CONSOLE_SCOPES")


def policy(origin: str) -> str:
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
        f"connect-src 'self' {origin}; base-uri 'none'; form-action 'self' {origin}; frame-ancestors 'none'"
    )


LOCAL_POLICY = policy("http://127.0.0.1:7071")


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The settings as devhost has them (the console's own unset); the process's settings re-read after."""
    for name in CONSOLE_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HERALD_AUTH_ISSUER", DEVHOST_ISSUER)
    settings.cache_clear()
    yield monkeypatch
    settings.cache_clear()


async def no_services() -> Any:
    raise AssertionError("the console needs no services")


@pytest.fixture(scope="module")
def app() -> Any:
    return create_api(no_services)


@pytest.fixture
async def browser(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:7071") as http:
        yield http


def served_files() -> list[str]:
    return sorted(
        path.relative_to(CONSOLE).as_posix()
        for path in CONSOLE.rglob("*")
        if path.is_file() and path.suffix in console.CONTENT_TYPES and not path.name.startswith(".")
    )


def assert_hardened(response: httpx.Response, csp: str = LOCAL_POLICY) -> None:
    assert response.headers["content-security-policy"] == csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_the_console_page_is_served_without_a_token(browser: httpx.AsyncClient) -> None:
    response = await browser.get("/console/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["etag"].startswith('"')
    assert response.content == (CONSOLE / "index.html").read_bytes()
    assert_hardened(response)
    redirect = await browser.get("/console")
    assert (redirect.status_code, redirect.headers["location"]) == (308, "/console/")
    assert_hardened(redirect)


async def test_every_file_is_served_with_its_type_and_the_policy(browser: httpx.AsyncClient) -> None:
    files = served_files()
    assert {"index.html", "app.js", "vendor/htm-preact.mjs", "vendor/uplot.mjs", "vendor/uplot.min.css"} <= set(files)
    expected_type = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for name in files:
        response = await browser.get(f"/console/{name}")
        assert response.status_code == 200, name
        assert response.content == (CONSOLE / name).read_bytes(), name
        suffix = Path(name).suffix
        assert response.headers["content-type"].split(";")[0] == expected_type.get(
            suffix, console.CONTENT_TYPES[suffix].split(";")[0]
        ), name
        if name != "index.html":
            assert response.headers["cache-control"] == "public, max-age=0, must-revalidate", name
        assert_hardened(response)


async def test_the_page_loads_only_files_herald_serves_and_nothing_inline(browser: httpx.AsyncClient) -> None:
    """What the policy would block in a browser: inline script, style or handlers, or a file from elsewhere."""
    for page in CONSOLE.rglob("*.html"):
        html = page.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), f"{page.name}: inline script"
        assert not re.search(r"<style\b|\sstyle=|\son[a-z]+=", html, re.IGNORECASE), (
            f"{page.name}: inline style/handler"
        )
        for reference in re.findall(r'(?:src|href)="([^"#]+)"', html):
            assert "//" not in reference, f"{page.name} loads {reference} from elsewhere"
            response = await browser.get(f"/console/{reference}")
            assert response.status_code == 200, reference


async def test_head_answers_as_get_without_the_body(app: Any, browser: httpx.AsyncClient) -> None:
    """Browsers and link checkers ask HEAD: the headers a GET would have, no body (never a 405)."""
    for path in ("/console/", "/console/app.js", "/console/config.json"):
        got = await browser.get(path)
        status, headers, body = await asgi_get(app, path, method="HEAD")
        assert (status, body) == (200, b""), path
        assert headers["content-length"] == str(len(got.content)), path
        for name in ("content-type", "etag", "cache-control", "content-security-policy"):
            assert headers[name] == got.headers[name], (path, name)
    status, headers, _ = await asgi_get(app, "/console", method="HEAD")
    assert (status, headers["location"]) == (308, "/console/")


async def test_an_unchanged_file_is_a_304(browser: httpx.AsyncClient) -> None:
    for path in ("/console/", "/console/vendor/uplot.mjs", "/console/config.json"):
        first = await browser.get(path)
        etag = first.headers["etag"]
        for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            again = await browser.get(path, headers={"if-none-match": header})
            assert again.status_code == 304, (path, header)
            assert again.content == b""
            assert again.headers["etag"] == etag
            assert again.headers["cache-control"] == first.headers["cache-control"]
            assert_hardened(again)
        changed = await browser.get(path, headers={"if-none-match": '"something-else"'})
        assert changed.status_code == 200 and changed.content == first.content


async def asgi_get(app: Any, raw_path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """A GET with the path exactly as sent: the server decodes %-escapes into ``path`` but keeps
    ``raw_path``, and no client normalises the ``..`` away first."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:7071")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 7071),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


@pytest.mark.parametrize(
    "raw_path",
    [
        "/console/../function_app.py",
        "/console/%2e%2e/function_app.py",
        "/console/%2E%2E/function_app.py",
        "/console/..%2ffunction_app.py",
        "/console/%2e%2e%2f%2e%2e%2fetc/passwd",
        "/console/vendor/../../shared/config.py",
        "/console/..%5cfunction_app.py",
        "/console/%252e%252e/function_app.py",
        "/console//etc/passwd",
        "/console/%2fetc/passwd",
        "/console/vendor/",
        "/console/vendor/README.md",
        "/console/lib",
        "/console/nothing.js",
    ],
)
async def test_nothing_outside_the_console_files_is_served(app: Any, raw_path: str) -> None:
    status, headers, body = await asgi_get(app, raw_path)
    assert status == 404, raw_path
    assert headers["content-type"] == "application/problem+json"
    assert b"import" not in body and b"root:" not in body
    assert headers["x-content-type-options"] == "nosniff"


def test_only_regular_files_inside_the_directory_are_loaded(tmp_path: Path) -> None:
    root = tmp_path / "console"
    (root / "lib").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html>")
    (root / "lib" / "a.js").write_text("export {};")
    (root / ".env").write_text("SECRET=1")
    (root / "server.py").write_text("print()")
    (tmp_path / "secret.js").write_text("secret")
    (root / "leak.js").symlink_to(tmp_path / "secret.js")
    (root / "outside").symlink_to(tmp_path, target_is_directory=True)
    assets = console.load_assets(root)
    assert set(assets) == {"index.html", "lib/a.js"}
    assert assets["index.html"].cache_control == "no-cache"
    assert assets["lib/a.js"].content_type == "text/javascript; charset=utf-8"
    assert console.load_assets(tmp_path / "absent") == {}


async def test_config_points_at_devhost_by_default(browser: httpx.AsyncClient) -> None:
    response = await browser.get("/console/config.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-cache"
    assert_hardened(response)
    assert response.json() == {
        "authority": DEVHOST_ISSUER,
        "clientId": "herald-console",
        "scopes": "openid events.publish events.read events.subscribe notifications.order admin",
        "mode": "local",
    }


async def test_config_and_policy_follow_the_settings(
    browser: httpx.AsyncClient, environment: pytest.MonkeyPatch
) -> None:
    environment.setenv("HERALD_CONSOLE_AUTHORITY", ENTRA)
    environment.setenv("HERALD_CONSOLE_CLIENT_ID", "0f5a2f7e-1111-4000-8000-000000000002")
    environment.setenv("HERALD_CONSOLE_SCOPES", "openid  api://herald/events.read\napi://herald/events.subscribe")
    settings.cache_clear()
    response = await browser.get("/console/config.json")
    assert response.json() == {
        "authority": ENTRA,
        "clientId": "0f5a2f7e-1111-4000-8000-000000000002",
        "scopes": "openid api://herald/events.read api://herald/events.subscribe",
        "mode": "entra",
    }
    entra_policy = policy("https://login.microsoftonline.com")
    assert_hardened(response, entra_policy)
    assert_hardened(await browser.get("/console/"), entra_policy)


async def test_the_authority_defaults_to_the_token_issuer(
    browser: httpx.AsyncClient, environment: pytest.MonkeyPatch
) -> None:
    environment.setenv("HERALD_AUTH_ISSUER", ENTRA)
    settings.cache_clear()
    config = (await browser.get("/console/config.json")).json()
    assert (config["authority"], config["mode"]) == (ENTRA, "entra")
    environment.setenv("HERALD_AUTH_ISSUER", "http://127.0.0.1:7072/devhost/")
    settings.cache_clear()
    response = await browser.get("/console/config.json")
    assert response.json()["mode"] == "local"
    assert_hardened(response, policy("http://127.0.0.1:7072"))


async def test_other_methods_are_refused(browser: httpx.AsyncClient) -> None:
    for method in ("POST", "PUT", "DELETE"):
        response = await browser.request(method, "/console/app.js")
        assert response.status_code == 405, method
        assert response.headers["content-type"] == "application/problem+json"


async def test_devhost_routes_the_console_to_the_http_function() -> None:
    """The Functions route ``{*route}`` (no route prefix, host.json) reaches /console as it reaches /api/v1."""
    from devhost.functions_index import index_functions
    from devhost.http import DevHostHttpApp
    from devhost.invocation import Invoker
    from function_app import app as function_app
    from tests.support.functions_index import app_settings

    invoker = Invoker(str(REPO))
    host = DevHostHttpApp(
        index_functions(function_app, app_settings()), invoker, route_prefix="", eventgrid_key="unused"
    )
    transport = httpx.ASGITransport(app=host)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:7071") as http:
            page = await http.get("/console/")
            module = await http.get("/console/vendor/htm-preact.mjs")
            outside = await http.get("/console/%2e%2e/host.json")
    finally:
        invoker.close()
    assert page.status_code == 200 and page.content == (CONSOLE / "index.html").read_bytes()
    assert_hardened(page)
    assert module.headers["content-type"] == "text/javascript; charset=utf-8"
    assert outside.status_code == 404
