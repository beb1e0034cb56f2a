"""Authentication at the edge: every route but health and docs depends on ``require_scope``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.api.dependencies import use_cases
from shared.api.problems import Problem
from shared.identity.accounts import unmapped_detail
from shared.identity.parties import InvalidIdentity, parse_party
from shared.identity.tokens import Principal, TokenInvalid

SCOPES = {
    "events.publish": "Publish events",
    "events.read": "Read events",
    "events.subscribe": "Manage webhook subscriptions",
    "notifications.order": "Order email and SMS notifications",
    "admin": "Administer Herald",
}

_bearer = HTTPBearer(auto_error=False, description="A JWT from the configured issuer (devhost locally)")


def _unauthorized(detail: str) -> Problem:
    return Problem(
        401,
        "Unauthorized",
        detail,
        kind="unauthorized",
        headers={"WWW-Authenticate": 'Bearer realm="herald"'},
    )


async def _authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    """The caller's validated token (once per request, whatever scopes the route accepts)."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise _unauthorized("send a bearer token in the Authorization header")
    services = await use_cases(request)
    try:
        principal: Principal = await services.tokens.validate(credentials.credentials)
    except TokenInvalid as error:
        raise _unauthorized(str(error)) from error
    try:
        parse_party(principal.subject)
    except InvalidIdentity as error:
        raise _unauthorized(f"the token's subject is not a Herald identity: {error}") from error
    return principal


def require_scope(scope: str) -> Callable[..., Awaitable[Principal]]:
    return require_any_scope(scope)


def require_any_scope(*scopes: str) -> Callable[..., Awaitable[Principal]]:
    """A token with any one of ``scopes`` (a 403 names them all)."""
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if not scopes or unknown:
        raise ValueError(f"unknown scope {', '.join(unknown)}")

    async def authenticated(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
    ) -> Principal:
        principal = await _authenticate(request, credentials)
        if principal.bootstrap and "admin" not in scopes and principal.account is not None:
            # An unmapped administrator may map accounts (their own too), and acts as nobody elsewhere.
            raise _unauthorized(unmapped_detail(principal.account))
        if not any(scope in principal.scopes for scope in scopes):
            named = " or ".join(f"'{scope}'" for scope in scopes)
            raise Problem(403, "Forbidden", f"the token lacks the scope {named}", kind="insufficient-scope")
        request.state.principal = principal
        return principal

    authenticated.required_scope = "|".join(scopes)  # type: ignore[attr-defined]  # read by the route-coverage test
    return authenticated
