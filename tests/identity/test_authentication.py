"""No route is open: every /api/v1 route but health and docs needs a valid bearer token with its scope.

The one exception outside /api/v1 is the console's static files (shared/api/console.py), listed in
``CONSOLE_PATHS``: public, GET and HEAD only, with no dependency at all (so no data behind them)."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.api import openapi
from shared.api.app import BASIC_AUTH_PATHS, CONSOLE_PATHS, PUBLIC_PATHS, create_api


def api_routes():
    async def unused():
        raise AssertionError

    routes = openapi.api_routes(create_api(unused).routes)
    assert len(routes) > 30, "the routes of the included routers"
    return routes


def test_every_route_is_under_api_v1():
    assert all(route.path.startswith("/api/v1/") for route in api_routes() if route.path not in CONSOLE_PATHS)


def test_the_console_is_the_only_public_exception_outside_api_v1():
    console = [route for route in api_routes() if route.path in CONSOLE_PATHS]
    assert {route.path for route in console} == CONSOLE_PATHS
    for route in console:
        assert route.path == "/console" or route.path.startswith("/console/"), route.path
        assert set(route.methods) == {"GET", "HEAD"}, route.path  # HEAD: GET without the body
        assert not route.include_in_schema, route.path
        assert route.dependant.dependencies == [], f"{route.path} is public: it must depend on nothing"
    assert not CONSOLE_PATHS & (PUBLIC_PATHS | BASIC_AUTH_PATHS)


def test_every_route_but_the_public_ones_requires_a_scope():
    for route in api_routes():
        scopes = [getattr(dependency.call, "required_scope", None) for dependency in route.dependant.dependencies]
        basic = [getattr(dependency.call, "basic_auth", False) for dependency in route.dependant.dependencies]
        if route.path in PUBLIC_PATHS or route.path in CONSOLE_PATHS:
            assert not any(scopes), f"{route.path} is public but asks for a token"
        elif route.path in BASIC_AUTH_PATHS:
            assert any(basic), f"{route.path} is listed for basic auth but does not require it"
        else:
            assert any(scopes), f"{route.path} ({', '.join(route.methods)}) is not authenticated"


async def test_every_route_answers_401_without_a_token(client):
    for route in api_routes():
        if route.path in PUBLIC_PATHS or route.path in CONSOLE_PATHS:
            continue
        path = route.path.replace("{", "").replace("}", "")
        for method in route.methods:
            response = await client.request(method, path)
            assert response.status_code == 401, (method, path, response.status_code)
            scheme = "Basic" if route.path in BASIC_AUTH_PATHS else "Bearer"
            assert response.headers["www-authenticate"].startswith(scheme)
            assert response.headers["content-type"] == "application/problem+json"


async def test_public_routes_answer_without_a_token(client):
    assert (await client.get("/api/v1/health")).json() == {"status": "ok"}
    document = (await client.get("/api/v1/openapi.json")).json()
    assert document["info"]["title"] == "Herald"
    assert "bearer" in str(document["components"]["securitySchemes"]).lower()
    assert (await client.get("/api/v1/docs")).status_code == 200


async def test_unknown_path_is_a_404_problem(client):
    response = await client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def other_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda issuer: issuer.token(key=other_key()), "signature"),
        (lambda issuer: issuer.token(audience="api://someone-else"), "audience"),
        (lambda issuer: issuer.token(issuer="https://evil.example/"), "issuer"),
        (lambda issuer: issuer.token(lifetime=-120), "expired"),
        (lambda issuer: issuer.token(not_before=int(time.time()) + 600), "not valid yet"),
        (lambda issuer: issuer.token(kid="unknown-kid"), "unknown key"),
        (lambda issuer: "not.a.jwt", "not a JWT"),
        (lambda issuer: issuer.token()[:-4] + "AAAA", "signature"),
    ],
)
async def test_bad_tokens_are_401_with_the_reason(client, issuer, resource, make_token, reason):
    token = make_token(issuer)
    response = await client.get(
        "/api/v1/events", params={"resource": resource}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert reason in response.json()["detail"]


async def test_clock_skew_up_to_60_seconds_is_tolerated(client, issuer, resource):
    token = issuer.token(scopes=["events.read"], lifetime=-30)  # expired 30 s ago
    response = await client.get(
        "/api/v1/events", params={"resource": resource}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200


async def test_unsigned_token_is_refused(client, issuer, resource):
    import jwt

    token = jwt.encode(
        {"sub": "x", "aud": "api://herald", "iss": "http://127.0.0.1:7071/devhost", "exp": time.time() + 60},
        None,
        algorithm="none",
    )
    response = await client.get(
        "/api/v1/events", params={"resource": resource}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401


async def test_missing_scope_is_403(client, issuer, resource):
    read_only = issuer.headers("events.read")
    response = await client.post(
        "/api/v1/events", headers={**read_only, "content-type": "application/cloudevents+json"}, content=b"{}"
    )
    assert response.status_code == 403
    assert "events.publish" in response.json()["detail"]
    publish_only = issuer.headers("events.publish")
    assert (await client.get("/api/v1/events", params={"resource": resource}, headers=publish_only)).status_code == 403


async def test_application_roles_count_as_scopes(client, issuer, resource):
    token = issuer.token(scopes=[], extra={"roles": ["events.read"]})
    response = await client.get(
        "/api/v1/events", params={"resource": resource}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200


async def test_a_route_taking_either_of_two_scopes_validates_the_token_once(client, issuer, services, monkeypatch):
    """``require_any_scope``: one validation, then the scopes; a token with only the second scope is
    not validated again per scope tried."""
    validate = services.tokens.validate
    calls: list[str] = []

    async def counted(token: str):
        calls.append(token)
        return await validate(token)

    monkeypatch.setattr(services.tokens, "validate", counted)
    for scopes, status in ((("notifications.order",), 200), (("admin",), 200), (("events.read",), 403)):
        calls.clear()
        response = await client.get("/api/v1/dev/outbox", headers=issuer.headers(*scopes))
        assert response.status_code == status, (scopes, response.text)
        assert len(calls) == 1, scopes
    assert "'admin' or 'notifications.order'" in response.json()["detail"]
