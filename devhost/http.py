"""devhost's ASGI front door: what the Functions host does with HTTP before the worker sees it.

Event Grid webhooks and a few admin/issuer endpoints are served here; every other request is
routed (Functions route templates under ``routePrefix``) to an HTTP-triggered function as an
``azure.functions.HttpRequest`` carrying the full original URL, so ``AsgiMiddleware`` hands the
ASGI app the real path and the untouched query string.

Before any body is read, as in the Functions host: a header whose bytes are not UTF-8 is a 400, a
``Content-Length`` over the request body limit (``FUNCTIONS_REQUEST_BODY_SIZE_LIMIT``, default
100 MB) is a 413, and a webhook call without its system key a 401. A chunked body is counted as it
arrives and refused with 413 once it passes the limit; a body that stops arriving is a 408 after
``request_body_timeout``. These refusals close the connection, so the rest of a refused body is
never read.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from devhost.bindings import encode_http_response, http_input
from devhost.eventgrid import WEBHOOK_PATH, EventGridWebhook, unauthorized
from devhost.functions_index import FunctionIndex, FunctionSpec, TriggerKind
from devhost.invocation import Invoker, short_error
from devhost.responses import Response, json_response, problem
from devhost.signin import LocalSignIn, with_cors

log = logging.getLogger("devhost")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

ADMIN_STATUS_PATH = "/admin/host/status"
# The Functions host's default request body limit (HttpRequestSizeMiddleware), overridable with
# FUNCTIONS_REQUEST_BODY_SIZE_LIMIT as on the host.
DEFAULT_MAX_REQUEST_BODY_SIZE = 104_857_600
DEFAULT_REQUEST_BODY_TIMEOUT = 30.0
ISSUER_PATH = "/devhost"
_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive"}
_PARAM = re.compile(r"^\{(\*?)([^:}=?]+)(?::[^}=?]*)?(?:=[^}?]*)?(\??)\}$")


@dataclass(frozen=True)
class HttpRoute:
    spec: FunctionSpec
    pattern: re.Pattern[str]
    groups: dict[str, str]
    precedence: tuple[int, int]


def compile_route(route_prefix: str, template: str) -> tuple[re.Pattern[str], dict[str, str], tuple[int, int]]:
    """Turn a Functions route template (``items/{id:int?}``, ``{*route}``) into a regex.

    Literal segments match case-insensitively, as in ASP.NET routing; constraints are not enforced.
    """
    segments = [s for s in route_prefix.strip("/").split("/") if s] + [s for s in template.strip("/").split("/") if s]
    pattern = ""
    groups: dict[str, str] = {}
    literals = 0
    catch_all = 0
    for segment in segments:
        match = _PARAM.match(segment)
        if match is None:
            pattern += "/" + re.escape(segment)
            literals += 1
            continue
        star, name, optional = match.groups()
        group = f"g{len(groups)}"
        groups[group] = name
        if star:
            pattern += f"(?:/(?P<{group}>.*))?"
            catch_all = 1
        elif optional:
            pattern += f"(?:/(?P<{group}>[^/]+))?"
        else:
            pattern += f"/(?P<{group}>[^/]+)"
    return re.compile(f"^{pattern}/?$", re.IGNORECASE), groups, (catch_all, -literals)


def build_routes(index: FunctionIndex, route_prefix: str) -> list[HttpRoute]:
    routes = []
    for spec in index.of_kind(TriggerKind.HTTP):
        pattern, groups, precedence = compile_route(route_prefix, spec.route or spec.name)
        routes.append(HttpRoute(spec, pattern, groups, precedence))
    return sorted(routes, key=lambda route: route.precedence)


class HeaderNotUtf8(Exception):
    """A request header value whose bytes are neither ASCII nor UTF-8: the host's Kestrel refuses the request."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _joined_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The header values as the host hands them to the worker: text, repeated headers folded into one
    comma-separated value (cookies with ``; ``).

    The host's Kestrel decodes request header bytes as ASCII or else strict UTF-8 (no
    ``RequestHeaderEncodingSelector`` is set) and refuses the request when they are neither, so
    ``Blåbær`` sent as UTF-8 arrives as ``Blåbær`` and sent as Latin-1 is a 400 before any function
    runs. ``AsgiMiddleware`` then encodes each value as UTF-8 into the ASGI scope: the app sees the
    bytes the client sent.
    """
    headers: dict[str, str] = {}
    for key_bytes, value_bytes in raw:
        key = key_bytes.decode("latin-1").lower()
        try:
            value = value_bytes.decode("utf-8")
        except UnicodeDecodeError:
            raise HeaderNotUtf8(key) from None
        if key in headers:
            headers[key] += ("; " if key == "cookie" else ", ") + value
        else:
            headers[key] = value
    return headers


def _query_params(query_string: str) -> dict[str, str]:
    """``req.params``: repeated names are comma-joined; the ASGI app still gets the raw query via the URL."""
    params: dict[str, str] = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        params[key] = f"{params[key]},{value}" if key in params else value
    return params


def to_response(value: Any) -> Response:
    """The response the host would send for what an HTTP function returned (see ``encode_http_response``)."""
    status, headers, body = encode_http_response(value)
    return Response(status, body, [(name, text) for name, text in headers if name.lower() not in _HOP_BY_HOP])


class DevHostHttpApp:
    """The ASGI app uvicorn serves."""

    def __init__(
        self,
        index: FunctionIndex,
        invoker: Invoker,
        *,
        route_prefix: str = "",
        jwks_path: Path | None = None,
        issuer: str | None = None,
        eventgrid_key: str,
        max_request_body_size: int = DEFAULT_MAX_REQUEST_BODY_SIZE,
        request_body_timeout: float = DEFAULT_REQUEST_BODY_TIMEOUT,
        signin: LocalSignIn | None = None,
    ) -> None:
        self._routes = build_routes(index, route_prefix)
        self._invoker = invoker
        self._eventgrid = EventGridWebhook(index, invoker, eventgrid_key)
        self._jwks_path = jwks_path
        self._issuer = issuer
        # Sign-in signs with the key beside the JWKS it serves (devhost's state directory).
        if signin is None and jwks_path is not None:
            signin = LocalSignIn(jwks_path.parent, issuer=issuer, prefix=ISSUER_PATH)
        self._signin = signin
        self._max_body = max_request_body_size
        self._body_timeout = request_body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            response = await self._respond(scope, receive)
        except Exception as exc:  # a devhost bug must not kill the connection silently
            log.exception("devhost: error handling %s %s", scope.get("method"), scope.get("path"))
            response = problem(500, "devhost error", short_error(exc))
        if response is not None:
            await _send_response(send, response)

    async def _respond(self, scope: Scope, receive: Receive) -> Response | None:
        """The response to one request, or None when the client went away before sending its body."""
        try:
            headers = _joined_headers(scope.get("headers", []))
        except HeaderNotUtf8 as error:
            detail = f"the {error.name} header is neither ASCII nor UTF-8, which the Functions host refuses"
            return _closing(problem(400, "Bad Request", detail))
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_body:
            return _closing(_too_large(self._max_body))
        if scope["path"] == WEBHOOK_PATH:
            query = _query_params(scope.get("query_string", b"").decode("latin-1"))
            if not self._eventgrid.authorized(query, headers):
                return _closing(unauthorized())
        try:
            body = await read_body(receive, self._max_body, self._body_timeout)
        except BodyTooLarge:
            return _closing(_too_large(self._max_body))
        except TimeoutError:
            detail = f"no request body data arrived for {self._body_timeout:g} s"
            return _closing(problem(408, "Request Timeout", detail))
        if body is None:
            return None
        return await self._dispatch(scope, headers, body)

    async def _dispatch(self, scope: Scope, headers: dict[str, str], body: bytes) -> Response:
        path: str = scope["path"]
        method: str = scope["method"].upper()
        query_string = scope.get("query_string", b"").decode("latin-1")
        if path == WEBHOOK_PATH:
            return await self._eventgrid.handle(method, _query_params(query_string), headers, body)
        if path == ADMIN_STATUS_PATH:
            return json_response(200, {"state": "Running", "version": "devhost"})
        if path.startswith(ISSUER_PATH + "/") and self._jwks_path is not None:
            base = f"{scope.get('scheme', 'http')}://{headers.get('host', '127.0.0.1')}{ISSUER_PATH}"
            if self._signin is not None:
                signin_response = await self._signin.respond(method, path, query_string, headers, body, base)
                if signin_response is not None:
                    return signin_response
            issuer_response = self._issuer_document(scope, path, headers)
            if issuer_response is not None:
                return with_cors(issuer_response, headers)
        return await self._invoke_http(scope, method, path, headers, query_string, body)

    def _match(self, method: str, path: str) -> tuple[HttpRoute, dict[str, str]] | None:
        for route in self._routes:
            match = route.pattern.match(path)
            if match is None:
                continue
            if route.spec.methods is not None and method not in route.spec.methods:
                continue
            params = {route.groups[g]: v for g, v in match.groupdict().items() if v is not None}
            return route, params
        return None

    async def _invoke_http(
        self, scope: Scope, method: str, path: str, headers: dict[str, str], query_string: str, body: bytes
    ) -> Response:
        matched = self._match(method, path)
        if matched is None:
            return problem(404, "Not found", f"no HTTP function matches {method} {path}")
        route, route_params = matched
        raw_path = scope.get("raw_path") or path.encode("utf-8")
        host = headers.get("host") or "{}:{}".format(*(scope.get("server") or ("127.0.0.1", 80)))
        url = f"{scope.get('scheme', 'http')}://{host}{raw_path.decode('latin-1')}"
        if query_string:
            url += "?" + query_string
        request = http_input(
            route.spec.name,
            method=method,
            url=url,
            headers=headers,
            route_params=route_params,
            query=_query_params(query_string),
            body=body,
        )
        result = await self._invoker.invoke(
            route.spec,
            request,
            log_fields={"method": method, "path": path},
            trace_parent=headers.get("traceparent", ""),
        )
        if result.error is not None:
            return problem(500, "Function invocation failed", short_error(result.error))
        try:
            return to_response(result.value)
        except (TypeError, NotImplementedError) as exc:  # the worker fails the invocation the same way
            return problem(500, "Function invocation failed", short_error(exc))

    def _issuer_document(self, scope: Scope, path: str, headers: Mapping[str, str]) -> Response | None:
        """Serve the local issuer's JWKS and OpenID metadata, so the default issuer URL is real."""
        assert self._jwks_path is not None
        if path == f"{ISSUER_PATH}/jwks.json":
            return Response(200, self._jwks_path.read_bytes(), [("content-type", "application/json")])
        if path == f"{ISSUER_PATH}/.well-known/openid-configuration":
            base = f"{scope.get('scheme', 'http')}://{headers.get('host', '127.0.0.1')}{ISSUER_PATH}"
            document = {
                "issuer": self._issuer or base,
                "jwks_uri": f"{base}/jwks.json",
                "id_token_signing_alg_values_supported": ["RS256"],
                **(self._signin.metadata(base) if self._signin is not None else {}),
            }
            return json_response(200, document)
        return None

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


class BodyTooLarge(Exception):
    """The request body grew past the limit while it was being read."""


async def read_body(receive: Receive, limit: int, idle_timeout: float) -> bytes | None:
    """The whole body (the worker gets it whole), or None on disconnect.

    Raises BodyTooLarge as soon as more than ``limit`` bytes arrived (nothing past that is read) and
    TimeoutError when no data came for ``idle_timeout`` seconds.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await asyncio.wait_for(receive(), idle_timeout)
        if message["type"] == "http.disconnect":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _too_large(limit: int) -> Response:
    return problem(413, "Payload Too Large", f"the request body is over the host's limit of {limit} bytes")


def _closing(response: Response) -> Response:
    """Refused before its body was read: close, rather than read and discard the rest of it."""
    return Response(response.status, response.body, [*response.headers, ("connection", "close")])


async def _send_response(send: Send, response: Response) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode("ascii")))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
