"""The Herald Console under /console: static files from ``console/`` at the repository root, and config.json.

The console is a single-page app with no build step (docs/architecture.md, "The console"). Its files
need no token: they hold nothing but code, and every API call the console makes carries the person's
own access token. The files are read once per process into memory, and only those are served: a path
is looked up by name among them, so no request can reach a file outside ``console/`` (``..``, encoded
or not, names no file in the table). Every response carries a strict Content-Security-Policy: scripts
and styles from Herald's origin only (no inline script or style anywhere in the console), connections
to Herald and the sign-in authority only, and no framing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from shared.api.problems import Problem
from shared.config import Settings, settings

CONSOLE_DIR = Path(__file__).resolve().parents[2] / "console"
PREFIX = "/console"
# The console's routes: served without a token (tests/identity/test_authentication.py).
PATHS = frozenset({PREFIX, f"{PREFIX}/", f"{PREFIX}/config.json", f"{PREFIX}/{{asset:path}}"})

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".woff2": "font/woff2",
}
# The page and its configuration are checked on every load, so a deployment shows at once; the other
# files' names carry no version, so they are revalidated (a 304 while unchanged).
NO_CACHE = "no-cache"
REVALIDATE = "public, max-age=0, must-revalidate"

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str
    cache_control: str


def _asset(body: bytes, content_type: str, cache_control: str) -> Asset:
    return Asset(body, content_type, f'"{hashlib.sha256(body).hexdigest()[:32]}"', cache_control)


def load_assets(directory: Path) -> dict[str, Asset]:
    """Every servable file under ``directory`` by its relative POSIX path; hidden files, unknown types
    and links that leave the directory are left out."""
    root = directory.resolve()
    assets: dict[str, Asset] = {}
    if not root.is_dir():
        return assets
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        for name in sorted(names):
            path = Path(folder, name)
            content_type = CONTENT_TYPES.get(path.suffix.lower())
            if name.startswith(".") or content_type is None or not path.resolve().is_relative_to(root):
                continue
            relative = path.relative_to(root).as_posix()
            cache_control = NO_CACHE if relative in ("index.html", "config.json") else REVALIDATE
            assets[relative] = _asset(path.read_bytes(), content_type, cache_control)
    return assets


@cache
def _assets() -> Mapping[str, Asset]:
    return load_assets(CONSOLE_DIR)


def authority(config: Settings) -> str | None:
    """The console's sign-in authority: its own setting, else the token issuer."""
    return config.console_authority or config.auth_issuer


def _origin(url: str | None) -> str | None:
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else None


def signin_mode(url: str | None) -> str:
    """local for devhost's issuer (served at /devhost), entra for any other authority."""
    return "local" if urlsplit(url or "").path.rstrip("/") == "/devhost" else "entra"


def content_security_policy(config: Settings) -> str:
    origin = _origin(authority(config))
    signin = f" {origin}" if origin else ""
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            f"connect-src 'self'{signin}",
            "base-uri 'none'",
            f"form-action 'self'{signin}",
            "frame-ancestors 'none'",
        ]
    )


def console_config(config: Settings) -> dict[str, str | None]:
    url = authority(config)
    return {
        "authority": url,
        "clientId": config.console_client_id,
        "scopes": config.console_scopes,
        "mode": signin_mode(url),
    }


def _security_headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(settings()),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = {candidate.strip().removeprefix("W/") for candidate in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


def _serve(request: Request, asset: Asset) -> Response:
    headers = {"ETag": asset.etag, "Cache-Control": asset.cache_control, **_security_headers()}
    if _matches(request.headers.get("if-none-match"), asset.etag):
        return Response(status_code=304, headers=headers)
    if request.method == "HEAD":  # what a GET would answer, without the body
        headers["Content-Length"] = str(len(asset.body))
        return Response(media_type=asset.content_type, headers=headers)
    return Response(asset.body, media_type=asset.content_type, headers=headers)


# HEAD as GET without a body: browsers and link checkers ask it.
METHODS = ["GET", "HEAD"]


def _not_found(path: str) -> Problem:
    return Problem(404, "Not Found", f"there is no resource at {path}", headers=_security_headers())


@router.api_route(PREFIX, methods=METHODS)
async def console_root() -> Response:
    return RedirectResponse(f"{PREFIX}/", status_code=308, headers=_security_headers())


@router.api_route(f"{PREFIX}/", methods=METHODS)
async def console_index(request: Request) -> Response:
    return await console_asset(request, "index.html")


@router.api_route(f"{PREFIX}/config.json", methods=METHODS)
async def console_configuration(request: Request) -> Response:
    body = json.dumps(console_config(settings()), separators=(",", ":")).encode()
    return _serve(request, _asset(body, "application/json", NO_CACHE))


@router.api_route(f"{PREFIX}/{{asset:path}}", methods=METHODS)
async def console_asset(request: Request, asset: str) -> Response:
    found = _assets().get(asset)
    if found is None:
        raise _not_found(request.url.path)
    return _serve(request, found)
