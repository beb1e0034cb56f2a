"""Who the caller is (``GET /api/v1/me``), and the map from accounts to Herald identities
(``/api/v1/admin/identities``, scope ``admin``) that ``HERALD_AUTH_IDENTITIES=mapped`` reads."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.api.auth import SCOPES, require_any_scope, require_scope
from shared.api.dependencies import use_cases
from shared.api.openapi import NEXT_LINK, problems
from shared.api.paging import next_link
from shared.api.problems import Problem, found_or_404, not_found
from shared.cursors import seal, unseal
from shared.identity.accounts import GUID_PATTERN, MAX_NOTE_LENGTH, Account, AccountMapping, MappedIdentities
from shared.identity.parties import InvalidIdentity, parse_party
from shared.identity.tokens import Principal

router = APIRouter(tags=["administration"])
administrator = require_scope("admin")
# Any Herald scope: the admin scope first, so an administrator whose account is not mapped yet gets in.
any_caller = require_any_scope("admin", *(scope for scope in SCOPES if scope != "admin"))
log = logging.getLogger("herald.identities")

Tenant = Annotated[str, Path(pattern=GUID_PATTERN, description="The directory (tenant) id: the token's tid")]
ObjectId = Annotated[
    str, Path(pattern=GUID_PATTERN, description="The user's or service principal's object id: the token's oid")
]


class _Body(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class AccountView(_Body):
    tenant: str
    objectId: str


class CallerView(_Body):
    identity: str = Field(description="The Herald identity the token acts for")
    scopes: list[str] = Field(description="The Herald scopes the token carries")
    account: AccountView | None = Field(
        default=None, description="With mapped identities: the account (tid, oid) the identity is mapped from"
    )
    mapped: bool = Field(
        description="False for an administrator whose account is not mapped yet (admin routes only, as "
        "system:herald-admin); true otherwise"
    )


class IdentityMappingView(_Body):
    tenant: str
    objectId: str
    identity: str
    note: str | None = None
    updated: str | None = Field(default=None, description="When it was last set (RFC 3339)")
    updatedBy: str | None = Field(default=None, description="The administrator who set it")


class IdentityMappingPage(_Body):
    count: int
    identities: list[IdentityMappingView] = Field(description="In (tenant, objectId) order")


class IdentityMappingRequest(BaseModel):
    """``PUT /api/v1/admin/identities/{tenant}/{objectId}``: replaces the account's mapping."""

    model_config = ConfigDict(extra="forbid")

    identity: str = Field(max_length=200, description="org:<9 digits>, person:<11 digits> or system:<name>")
    note: str | None = Field(default=None, max_length=MAX_NOTE_LENGTH, description="Who the account is, for people")

    @field_validator("identity")
    @classmethod
    def _identity(cls, value: str) -> str:
        try:
            return str(parse_party(value))
        except InvalidIdentity as error:
            raise ValueError(str(error)) from error


def _view(mapping: AccountMapping) -> dict[str, object]:
    return {
        "tenant": mapping.account.tenant,
        "objectId": mapping.account.object_id,
        "identity": mapping.identity,
        "note": mapping.note,
        "updated": mapping.updated.isoformat() if mapping.updated else None,
        "updatedBy": mapping.updated_by,
    }


def _none(account: Account) -> tuple[str, str]:
    return f"tenant {account.tenant} object {account.object_id} is not mapped", "identity-not-found"


async def _identities(request: Request) -> MappedIdentities:
    identities: MappedIdentities = (await use_cases(request)).identities
    return identities


def _actor(principal: Principal) -> str:
    """The administrator, for the log: by account when there is one (no national identity number in logs)."""
    account = principal.account
    return f"administrator {account.tenant}/{account.object_id}" if account else f"administrator {principal.subject}"


_CURSOR = "i1"


def _cursor(account: Account) -> str:
    return seal(_CURSOR, f"{account.tenant}/{account.object_id}")


def _after(token: str) -> Account:
    """The account a cursor names; a 400 problem for a cursor Herald did not issue."""
    tenant, _, object_id = (unseal(_CURSOR, token) or "").partition("/")
    account = Account.of(tenant, object_id)
    if not account.well_formed:
        raise Problem(400, "Bad Request", "'after' is not a cursor issued by Herald", kind="cursor-invalid")
    return account


@router.get(
    "/api/v1/me",
    tags=["identity"],
    summary="Who the token acts for",
    description="The caller's Herald identity and scopes, as Herald sees them (with mapped identities the "
    "token itself does not say). An account that is not mapped gets 401 naming its tenant and object id.",
    response_model=CallerView,
)
async def me(principal: Principal = Depends(any_caller)) -> JSONResponse:
    account = principal.account
    body: dict[str, object] = {
        "identity": principal.subject,
        "scopes": sorted(principal.scopes & SCOPES.keys()),
        "account": {"tenant": account.tenant, "objectId": account.object_id} if account else None,
        "mapped": not principal.bootstrap,
    }
    return JSONResponse(body)


@router.get(
    "/api/v1/admin/identities",
    summary="List the accounts mapped to Herald identities",
    description='A page at a time: the `Link` header\'s `rel="next"` URL reads on.',
    response_model=IdentityMappingPage,
    responses={200: {"headers": NEXT_LINK}},
)
async def list_identities(
    request: Request,
    after: Annotated[str | None, Query(max_length=200, description="The cursor from the previous page's Link")] = None,
    size: Annotated[int, Query(ge=1, le=1000)] = 100,
    principal: Principal = Depends(administrator),
) -> JSONResponse:
    start = _after(after) if after is not None else None
    found, last = await (await _identities(request)).list(start, size)
    body = [_view(mapping) for mapping in found]
    token = _cursor(last) if last is not None else None
    return JSONResponse({"count": len(body), "identities": body}, headers=await next_link(request, token))


@router.get(
    "/api/v1/admin/identities/{tenant}/{objectId}",
    summary="The Herald identity an account is mapped to",
    response_model=IdentityMappingView,
    responses=problems(404),
)
async def get_identity(
    request: Request, tenant: Tenant, objectId: ObjectId, principal: Principal = Depends(administrator)
) -> JSONResponse:
    account = Account.of(tenant, objectId)
    mapping = await (await _identities(request)).get(account)
    return JSONResponse(_view(found_or_404(mapping, *_none(account))))


@router.put(
    "/api/v1/admin/identities/{tenant}/{objectId}",
    summary="Map an account to a Herald identity (replaces its mapping)",
    description="Takes effect at once on the instance that handles it and within a minute on the others.",
    response_model=IdentityMappingView,
)
async def put_identity(
    request: Request,
    tenant: Tenant,
    objectId: ObjectId,
    body: Annotated[IdentityMappingRequest, Body()],
    principal: Principal = Depends(administrator),
) -> JSONResponse:
    account = Account.of(tenant, objectId)
    mapping = AccountMapping(
        account=account,
        identity=body.identity,
        note=body.note,
        updated=datetime.now(UTC),
        updated_by=principal.subject,
    )
    stored = await (await _identities(request)).put(mapping)
    log.info("%s mapped tenant %s object %s", _actor(principal), account.tenant, account.object_id)
    return JSONResponse(_view(stored))


@router.delete(
    "/api/v1/admin/identities/{tenant}/{objectId}",
    status_code=204,
    summary="Remove an account's mapping",
    description="The account gets 401 from then on: at once on the instance that handles it, within a "
    "minute on the others.",
    responses=problems(404),
)
async def delete_identity(
    request: Request, tenant: Tenant, objectId: ObjectId, principal: Principal = Depends(administrator)
) -> Response:
    account = Account.of(tenant, objectId)
    if not await (await _identities(request)).delete(account):
        raise not_found(*_none(account))
    log.info("%s unmapped tenant %s object %s", _actor(principal), account.tenant, account.object_id)
    return Response(status_code=204)
