"""Signing in at devhost's local issuer: OAuth 2.0 authorization code + PKCE, driven by Authlib's client
(a library nobody here wrote) against devhost's ASGI app in-process, with the page's forms submitted as a
browser submits them. The access token it yields is one Herald accepts."""

from __future__ import annotations

import html
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import authlib.deprecate  # noqa: F401  (it turns its own warnings always on when imported)
import httpx
import jwt
import pytest

from devhost.functions_index import FunctionIndex
from devhost.http import DevHostHttpApp
from devhost.invocation import Invoker
from devhost.issuer import ensure_issuer_keys
from devhost.signin import CODE_TTL_SECONDS, LocalSignIn, loopback_origin, loopback_redirect_uri, s256
from shared.composition.identity import signing_keys
from shared.config import load_settings
from shared.identity.tokens import TokenInvalid, TokenValidator

with warnings.catch_warnings():  # Authlib prefers the httpx2 fork and warns that it falls back to httpx
    warnings.simplefilter("ignore")
    from authlib.common.security import generate_token
    from authlib.integrations.httpx_client import AsyncOAuth2Client

BASE = "http://127.0.0.1:7071"
ISSUER = f"{BASE}/devhost"
AUTHORIZE = f"{ISSUER}/authorize"
TOKEN = f"{ISSUER}/token"
CLIENT_ID = "herald-console"
REDIRECT = "http://localhost:7071/console/"
VERIFIER = "v" * 43 + "-PKCE.verifier_~"


# --------------------------------------------------------------------------- a browser's view of the page


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    text_inputs: list[str] = field(default_factory=list)
    legend: str = ""
    button: str = ""


class PageReader(HTMLParser):
    """The forms (their fields, legend and button), the labels and what references what."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.labels: set[str] = set()
        self.ids: set[str] = set()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self._capture: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        self.tags.append((tag, values))
        if "id" in values:
            self.ids.add(values["id"])
        if tag == "form":
            self.forms.append(Form(values.get("action", ""), values.get("method", "get").lower()))
        elif tag == "input" and self.forms:
            self.forms[-1].fields[values["name"]] = values.get("value", "")
            if values.get("type") == "text":
                self.forms[-1].text_inputs.append(values["name"])
        elif tag == "label":
            self.labels.add(values.get("for", ""))
        elif tag in ("legend", "button"):
            self._capture = tag

    def handle_endtag(self, tag: str) -> None:
        if tag == self._capture:
            self._capture = None

    def handle_data(self, data: str) -> None:
        if self._capture and self.forms:
            setattr(self.forms[-1], self._capture, getattr(self.forms[-1], self._capture) + data.strip())

    def form(self, identity: str) -> Form:
        [found] = [form for form in self.forms if form.fields.get("identity") == identity]
        return found


def read_page(response: httpx.Response) -> PageReader:
    reader = PageReader()
    reader.feed(response.text)
    return reader


# --------------------------------------------------------------------------- devhost's ASGI app, in-process


@dataclass
class Issuer:
    http: httpx.AsyncClient
    app: DevHostHttpApp
    jwks_path: Path

    def oauth(self, scope: str, **metadata: Any) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=CLIENT_ID,
            token_endpoint_auth_method="none",
            scope=scope,
            redirect_uri=REDIRECT,
            code_challenge_method="S256",
            transport=httpx.ASGITransport(app=self.app),
            **metadata,
        )

    async def choose(self, authorize_url: str, identity: str, value: str | None = None) -> httpx.Response:
        """Open the sign-in page and submit the form for one identity, as a person does."""
        page = await self.http.get(authorize_url)
        assert page.status_code == 200, page.text
        form = read_page(page).form(identity)
        fields = dict(form.fields)
        if value is not None:
            fields[form.text_inputs[0]] = value
        return await self.http.post(
            form.action, data=fields, headers={"origin": BASE} if form.method == "post" else None
        )

    async def code(self, **overrides: str) -> str:
        params = {
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT,
            "scope": "openid events.read",
            "state": "s-1",
            "code_challenge": s256(VERIFIER),
            "code_challenge_method": "S256",
        } | overrides
        answer = await self.choose(f"{AUTHORIZE}?{urlencode(params)}", "org")
        assert answer.status_code == 303
        [code] = parse_qs(urlsplit(answer.headers["location"]).query)["code"]
        return code

    async def exchange(self, code: str, **overrides: str) -> httpx.Response:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": CLIENT_ID,
            "code_verifier": VERIFIER,
        } | overrides
        return await self.http.post(TOKEN, data=form, headers={"origin": "http://localhost:7071"})


def make_issuer(state: Path, tmp_path: Path, clock: Callable[[], float] | None = None) -> Issuer:
    jwks_path = ensure_issuer_keys(state)
    signin = LocalSignIn(jwks_path.parent, clock=clock) if clock is not None else None
    app = DevHostHttpApp(
        FunctionIndex(()), Invoker(str(tmp_path)), jwks_path=jwks_path, eventgrid_key="k", signin=signin
    )
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
    return Issuer(http, app, jwks_path)


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One issuer key for the module: generating an RSA key takes a second."""
    return tmp_path_factory.mktemp("devhost-state")


@pytest.fixture
async def issuer(state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Issuer]:
    # The access token carries the HERALD_AUTH_* defaults, as `python -m devhost token` does.
    monkeypatch.delenv("HERALD_AUTH_ISSUER", raising=False)
    monkeypatch.delenv("HERALD_AUTH_AUDIENCE", raising=False)
    running = make_issuer(state, tmp_path)
    async with running.http:
        yield running


def herald_validator(jwks_path: Path) -> TokenValidator:
    """What Herald builds in local mode (shared/composition/identity.py), from its settings."""
    config = load_settings({"HERALD_MODE": "local", "HERALD_AUTH_JWKS_PATH": str(jwks_path)})
    return TokenValidator(issuer=config.auth_issuer, audience=config.auth_audience, keys=signing_keys(config))


def verify_id_token(token: str, jwks: dict[str, Any], issuer: str) -> dict[str, Any]:
    [key] = [k for k in jwt.PyJWKSet.from_dict(jwks).keys if k.key_id == jwt.get_unverified_header(token)["kid"]]
    claims: dict[str, Any] = jwt.decode(token, key.key, algorithms=["RS256"], audience=CLIENT_ID, issuer=issuer)
    return claims


# --------------------------------------------------------------------------- the whole flow


async def test_the_metadata_document_names_the_sign_in_endpoints(issuer: Issuer) -> None:
    response = await issuer.http.get(f"{ISSUER}/.well-known/openid-configuration")
    document = response.json()
    assert document["issuer"] == ISSUER
    assert document["authorization_endpoint"] == AUTHORIZE
    assert document["token_endpoint"] == TOKEN
    assert document["end_session_endpoint"] == f"{ISSUER}/logout"
    assert document["response_types_supported"] == ["code"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["token_endpoint_auth_methods_supported"] == ["none"]
    assert "authorization_code" in document["grant_types_supported"]
    assert {"openid", "events.read", "admin"} <= set(document["scopes_supported"])
    assert document["subject_types_supported"] == ["public"]


@pytest.mark.parametrize(
    ("identity", "value", "subject", "scope", "granted"),
    [
        ("org", None, "org:991825827", "openid profile events.read events.publish admin", "events.publish events.read"),
        ("person", "01017010170", "person:01017010170", "openid events.subscribe offline_access", "events.subscribe"),
        ("system", "billing", "system:billing", "openid events.read notifications.order", "events.read notifications.order"),
        ("admin", None, "system:herald-admin", "openid admin events.read", "events.read admin"),
    ],
)  # fmt: skip
async def test_authlib_signs_in_with_pkce_and_herald_accepts_the_access_token(
    issuer: Issuer, identity: str, value: str | None, subject: str, scope: str, granted: str
) -> None:
    metadata = (await issuer.http.get(f"{ISSUER}/.well-known/openid-configuration")).json()
    verifier = generate_token(64)
    async with issuer.oauth(scope) as client:
        url, state = client.create_authorization_url(
            metadata["authorization_endpoint"], code_verifier=verifier, nonce="n-0S6_WzA2Mj"
        )
        answer = await issuer.choose(url, identity, value)
        assert answer.status_code == 303
        location = answer.headers["location"]
        assert location.startswith(REDIRECT + "?")
        token = await client.fetch_token(
            metadata["token_endpoint"], authorization_response=location, code_verifier=verifier, state=state
        )
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    assert set(token["scope"].split()) == {"openid", *(["profile"] if "profile" in scope else []), *granted.split()}
    principal = await herald_validator(issuer.jwks_path).validate(token["access_token"])
    assert principal.subject == subject
    assert principal.scopes == frozenset(granted.split())  # requested ∩ allowed, OpenID scopes left out
    jwks = (await issuer.http.get(metadata["jwks_uri"])).json()
    claims = verify_id_token(token["id_token"], jwks, metadata["issuer"])
    assert (claims["sub"], claims["nonce"], claims["aud"]) == (subject, "n-0S6_WzA2Mj", CLIENT_ID)
    assert claims["name"] and claims["exp"] > claims["iat"]


async def test_the_sign_in_page_is_plain_accessible_html_under_a_strict_policy(issuer: Issuer) -> None:
    code_challenge = s256(VERIFIER)
    query = urlencode({"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT, "scope": "openid",
                       "state": "s", "code_challenge": code_challenge, "code_challenge_method": "S256"})  # fmt: skip
    page = await issuer.http.get(f"{AUTHORIZE}?{query}")
    assert page.headers["content-type"].startswith("text/html")
    assert "Sign in to Herald (local)" in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "style-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "form-action 'self' http://localhost:7071" in policy
    assert "script" not in page.text.lower() and "style=" not in page.text and "<style" not in page.text
    reader = read_page(page)
    assert {form.fields["identity"] for form in reader.forms} == {"org", "person", "system", "admin", "cancel"}
    assert reader.form("org").fields["org"] == "991825827"
    for form in reader.forms:
        assert form.method == "post" and form.action == "/devhost/authorize"
        assert all(name in reader.labels for name in form.text_inputs)  # every field has its label
        assert form.button
        if form.fields["identity"] != "cancel":
            assert form.legend
    described = [attrs["aria-describedby"] for tag, attrs in reader.tags if "aria-describedby" in attrs]
    assert described and all(ref in reader.ids for refs in described for ref in refs.split())
    [stylesheet] = [attrs["href"] for tag, attrs in reader.tags if tag == "link" and attrs.get("rel") == "stylesheet"]
    css = await issuer.http.get(stylesheet)
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert ":focus-visible" in css.text


# --------------------------------------------------------------------------- refusals at the sign-in page


def authorize_query(**overrides: str | None) -> str:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "state": "s",
        "code_challenge": s256(VERIFIER),
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return urlencode({name: value for name, value in params.items() if value is not None})


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"response_type": "token"}, "response_type must be code"),
        ({"code_challenge": None, "code_challenge_method": None}, "PKCE"),
        ({"code_challenge_method": "plain"}, "must be S256"),
        ({"code_challenge_method": None}, "must be S256"),
        ({"redirect_uri": "https://evil.example/console/"}, "loopback"),
        ({"redirect_uri": "http://127.0.0.1.evil.example/"}, "loopback"),
        ({"redirect_uri": "http://localhost@evil.example/"}, "loopback"),
        ({"redirect_uri": "http://127.0.0.1:7071/console/#x"}, "loopback"),
        ({"redirect_uri": "http://127.0.0.1:7071\\@evil.example/"}, "loopback"),
        ({"redirect_uri": None}, "redirect_uri is missing"),
        ({"client_id": None}, "client_id"),
        # A trailing newline (%0A) matched a ``$``-anchored pattern and reached the Location header.
        ({"redirect_uri": "http://127.0.0.1:7071/console/\n"}, "loopback"),
        ({"client_id": "herald-console\n"}, "client_id"),
        ({"code_challenge": s256(VERIFIER) + "\n"}, "code_challenge is not"),
    ],
)
async def test_a_bad_authorization_request_gets_an_error_page_and_no_redirect(
    issuer: Issuer, overrides: dict[str, str | None], says: str
) -> None:
    response = await issuer.http.get(f"{AUTHORIZE}?{authorize_query(**overrides)}")
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert says in response.text
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_a_repeated_parameter_is_refused(issuer: Issuer) -> None:
    response = await issuer.http.get(f"{AUTHORIZE}?{authorize_query()}&redirect_uri=http%3A%2F%2Flocalhost%3A1%2F")
    assert response.status_code == 400 and "more than once" in response.text


@pytest.mark.parametrize(
    ("identity", "value", "says"),
    [
        ("org", "991825828", "organisation number"),  # wrong check digit
        ("org", "12345", "organisation number"),
        ("person", "01017010171", "national identity number"),
        ("system", "has space", "system name"),
        ("system", "herald", "Herald's own"),
    ],
)
async def test_a_bad_identity_is_shown_on_the_page_with_the_form_kept(
    issuer: Issuer, identity: str, value: str, says: str
) -> None:
    response = await issuer.choose(f"{AUTHORIZE}?{authorize_query()}", identity, value)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert says in html.unescape(response.text)
    reader = read_page(response)
    kept = reader.form(identity)
    assert kept.fields[identity] == value  # what the person typed stays in the field
    assert kept.fields["redirect_uri"] == REDIRECT and kept.fields["code_challenge"] == s256(VERIFIER)
    [invalid] = [attrs for tag, attrs in reader.tags if attrs.get("aria-invalid") == "true"]
    assert invalid["name"] == identity


async def test_a_form_posted_from_a_page_elsewhere_is_refused(issuer: Issuer) -> None:
    form = dict(parse_qs(authorize_query())) | {"identity": ["admin"]}
    response = await issuer.http.post(AUTHORIZE, data=form, headers={"origin": "https://evil.example"})
    assert response.status_code == 403 and "location" not in response.headers


async def test_cancel_and_prompt_none_go_back_with_an_oauth_error(issuer: Issuer) -> None:
    cancelled = await issuer.choose(f"{AUTHORIZE}?{authorize_query()}", "cancel")
    assert cancelled.status_code == 303
    assert parse_qs(urlsplit(cancelled.headers["location"]).query)["error"] == ["access_denied"]
    silent = await issuer.http.get(f"{AUTHORIZE}?{authorize_query(prompt='none')}")
    assert silent.status_code == 302
    assert parse_qs(urlsplit(silent.headers["location"]).query) == {"error": ["login_required"], "state": ["s"]}


# --------------------------------------------------------------------------- refusals at the token endpoint


def assert_token_error(response: httpx.Response, error: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == error and body["error_description"]
    assert "access_token" not in body


def test_patterns_match_the_whole_value_not_up_to_a_trailing_newline() -> None:
    assert loopback_redirect_uri("http://127.0.0.1/x")
    assert not loopback_redirect_uri("http://127.0.0.1/x\n")
    assert loopback_origin("http://localhost:7071")
    assert not loopback_origin("http://localhost:7071\n")


async def test_a_verifier_with_a_trailing_newline_is_refused(issuer: Issuer) -> None:
    code = await issuer.code()
    response = await issuer.exchange(code, code_verifier=VERIFIER + "\n")
    assert_token_error(response, "invalid_request")


async def test_a_wrong_verifier_is_refused_and_uses_the_code_up(issuer: Issuer) -> None:
    code = await issuer.code()
    assert_token_error(await issuer.exchange(code, code_verifier="w" * 43), "invalid_grant")
    assert_token_error(await issuer.exchange(code), "invalid_grant")


async def test_a_code_is_used_once(issuer: Issuer) -> None:
    code = await issuer.code()
    first = await issuer.exchange(code)
    assert first.status_code == 200 and first.json()["access_token"]
    # oidc-client-ts refuses a token response whose Content-Type is not JSON.
    assert first.headers["content-type"] == "application/json" and first.headers["cache-control"] == "no-store"
    assert_token_error(await issuer.exchange(code), "invalid_grant")


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"redirect_uri": "http://127.0.0.1:9999/other/"}, "invalid_grant"),
        ({"client_id": "someone-else"}, "invalid_grant"),
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"code_verifier": ""}, "invalid_request"),
        ({"code_verifier": "short"}, "invalid_request"),
    ],
)
async def test_a_token_request_not_matching_the_code_is_refused(
    issuer: Issuer, overrides: dict[str, str], error: str
) -> None:
    code = await issuer.code()
    assert_token_error(await issuer.exchange(code, **overrides), error)


async def test_a_code_expires_after_a_minute(state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HERALD_AUTH_ISSUER", raising=False)
    now = [1_000_000.0]
    running = make_issuer(state, tmp_path, clock=lambda: now[0])
    async with running.http:
        code = await running.code()
        now[0] += CODE_TTL_SECONDS
        assert_token_error(await running.exchange(code), "invalid_grant")
        fresh = await running.code()
        now[0] += CODE_TTL_SECONDS - 1
        assert (await running.exchange(fresh)).status_code == 200


async def test_a_token_without_openid_has_no_id_token_and_a_garbled_token_is_refused(issuer: Issuer) -> None:
    response = await issuer.exchange(await issuer.code(scope="events.read"))
    document = response.json()
    assert "id_token" not in document and document["scope"] == "events.read"
    with pytest.raises(TokenInvalid):
        await herald_validator(issuer.jwks_path).validate(document["access_token"][:-4] + "AAAA")


# --------------------------------------------------------------------------- CORS and logout


async def test_loopback_origins_may_read_the_issuers_answers_others_may_not(issuer: Issuer) -> None:
    for path in ("/token", "/.well-known/openid-configuration", "/jwks.json"):
        preflight = await issuer.http.options(
            f"{ISSUER}{path}",
            headers={"origin": "http://localhost:7071", "access-control-request-method": "POST",
                     "access-control-request-headers": "content-type"},
        )  # fmt: skip
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "http://localhost:7071"
        assert "POST" in preflight.headers["access-control-allow-methods"]
        foreign = await issuer.http.options(f"{ISSUER}{path}", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in foreign.headers
    token = await issuer.exchange(await issuer.code())
    assert token.headers["access-control-allow-origin"] == "http://localhost:7071"
    metadata = await issuer.http.get(
        f"{ISSUER}/.well-known/openid-configuration", headers={"origin": "http://[::1]:8080"}
    )
    assert metadata.headers["access-control-allow-origin"] == "http://[::1]:8080"
    elsewhere = await issuer.http.get(f"{ISSUER}/jwks.json", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in elsewhere.headers


async def test_logout_goes_back_to_a_loopback_address_only(issuer: Issuer) -> None:
    back = await issuer.http.get(f"{ISSUER}/logout", params={"post_logout_redirect_uri": REDIRECT, "state": "x1"})
    assert back.status_code == 302 and back.headers["location"] == f"{REDIRECT}?state=x1"
    refused = await issuer.http.get(f"{ISSUER}/logout", params={"post_logout_redirect_uri": "https://evil.example/"})
    assert refused.status_code == 400 and "location" not in refused.headers
    plain = await issuer.http.get(f"{ISSUER}/logout")
    assert plain.status_code == 200 and "Signed out" in plain.text
