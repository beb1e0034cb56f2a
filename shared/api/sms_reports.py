"""POST /api/v1/notifications/sms/reports: delivery reports from the SMS gateway (HTTP basic auth).

Not bearer-authenticated: the gateway authenticates with the basic credentials in
HERALD_SMS_REPORT_USERNAME / HERALD_SMS_REPORT_PASSWORD (no credentials configured: every call
is 401). The path is in ``shared.api.app.BASIC_AUTH_PATHS``, which the route-authentication test reads.
A report naming a reference Herald has not stored yet answers 503 + Retry-After so the gateway
retries; after the bounded attempts it is parked and answered 200.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from shared.api.dependencies import use_cases
from shared.api.openapi import problems
from shared.api.problems import Problem
from shared.api.responses import ReportOutcomes
from shared.notifications.reports import ReportsUnreadable

router = APIRouter(tags=["notifications"])
_basic = HTTPBasic(auto_error=False, realm="herald-sms-reports")
MAX_BODY = 1024 * 1024


def _unauthorized() -> Problem:
    return Problem(
        401,
        "Unauthorized",
        "send the gateway's basic credentials",
        kind="unauthorized",
        headers={"WWW-Authenticate": 'Basic realm="herald-sms-reports"'},
    )


async def require_gateway(request: Request, credentials: HTTPBasicCredentials | None = Depends(_basic)) -> str:
    if credentials is None:
        raise _unauthorized()
    services = await use_cases(request)
    settings = services.notifications.settings
    expected_user, expected_password = settings.sms_report_username, settings.sms_report_password
    if not expected_user or not expected_password:
        raise _unauthorized()
    user_ok = secrets.compare_digest(credentials.username.encode(), expected_user.encode())
    password_ok = secrets.compare_digest(credentials.password.encode(), expected_password.encode())
    if not (user_ok and password_ok):
        raise _unauthorized()
    return credentials.username


require_gateway.basic_auth = True  # type: ignore[attr-defined]  # read by the route-authentication test


@router.post(
    "/api/v1/notifications/sms/reports",
    summary="SMS delivery reports from the gateway (basic auth; JSON or PSWin-style XML)",
    responses={
        200: {"model": ReportOutcomes, "description": "Every report was matched"},
        **problems(400, 413),
        503: {"description": "A report is not matched yet: retry after Retry-After"},
    },
)
async def sms_reports(request: Request, gateway: str = Depends(require_gateway)) -> Any:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise Problem(413, "Content Too Large", "at most 1 MiB of reports per call", kind="request-too-large")
    services = await use_cases(request)
    try:
        result = await services.notifications.reports.from_gateway(body, request.headers.get("content-type", ""))
    except ReportsUnreadable as error:
        raise Problem(400, "Bad Request", f"the reports are not readable: {error}", kind="invalid-reports") from error
    if result.unmatched:
        raise Problem(
            503,
            "Service Unavailable",
            f"{result.unmatched} reports name references not stored yet; retry",
            kind="report-not-matched",
            extensions={"outcomes": result.outcomes},
            headers={"Retry-After": "60"},
        )
    return result.outcomes
