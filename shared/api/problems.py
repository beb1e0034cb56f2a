"""RFC 9457 problem details: every error Herald answers is ``application/problem+json``."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.identity.authorization import DecisionUnavailable
from shared.urns import HERALD_NAMESPACE

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# A problem's ``type`` is this followed by its kind.
PROBLEM_TYPE_BASE = f"{HERALD_NAMESPACE}problem:"

T = TypeVar("T")


class Problem(Exception):
    """An error answer. ``kind`` names the problem type; ``extensions`` add members such as ``errors``."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        kind: str | None = None,
        extensions: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind
        self.extensions = dict(extensions or {})
        self.headers = dict(headers or {})


def not_found(detail: str, kind: str) -> Problem:
    """A 404 of type ``kind``."""
    return Problem(404, "Not Found", detail, kind=kind)


def found_or_404(value: T | None, detail: str, kind: str) -> T:
    """``value``, or a 404 of type ``kind`` when there is none."""
    if value is None:
        raise not_found(detail, kind)
    return value


@contextmanager
def missing_as_404(missing: type[Exception], detail: str, kind: str) -> Iterator[None]:
    """Answers a 404 of type ``kind`` when the block raises ``missing`` (the thing is not there, or not the caller's)."""
    try:
        yield
    except missing as error:
        raise not_found(detail, kind) from error


class _ProblemJSONResponse(JSONResponse):
    """ASCII-escaped, so a problem that quotes hostile input (a lone surrogate) still renders."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"{PROBLEM_TYPE_BASE}{problem.kind}" if problem.kind else "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
    }
    if instance:
        body["instance"] = instance
    body.update(problem.extensions)
    return _ProblemJSONResponse(body, status_code=problem.status, media_type=PROBLEM_JSON, headers=problem.headers)


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
}


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, error: Problem) -> JSONResponse:
        return problem_response(error, request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        detail = error.detail if isinstance(error.detail, str) else _TITLES.get(error.status_code, "Error")
        if error.status_code == 404 and detail == "Not Found":
            detail = f"there is no resource at {request.url.path}"
        if error.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        problem = Problem(error.status_code, _TITLES.get(error.status_code, "Error"), detail, headers=error.headers)
        return problem_response(problem, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {"location": ".".join(str(part) for part in item.get("loc", ())), "detail": item.get("msg", "invalid")}
            for item in error.errors()
        ]
        summary = "; ".join(f"{e['location']}: {e['detail']}" for e in errors[:5])
        problem = Problem(
            400,
            "Bad Request",
            f"the request is not valid: {summary}",
            kind="invalid-request",
            extensions={"errors": errors},
        )
        return problem_response(problem, request.url.path)

    @app.exception_handler(DecisionUnavailable)
    async def _undecided(request: Request, error: DecisionUnavailable) -> JSONResponse:
        log.warning("authorization unavailable", extra={"path": request.url.path, "reason": str(error)})
        problem = Problem(
            503,
            "Service Unavailable",
            "Herald cannot reach its policy decision point; nothing was done, retry shortly",
            kind="authorization-unavailable",
            headers={"Retry-After": "5"},
        )
        return problem_response(problem, request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        problem = Problem(500, "Internal Server Error", "Herald could not complete the request; it is safe to retry")
        return problem_response(problem, request.url.path)
