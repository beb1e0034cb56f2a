"""Sign-in at devhost's local issuer: an OAuth 2.0 authorization server (code + PKCE, OpenID Connect).

A person on a laptop signs in to the Herald Console with no cloud account: ``/devhost/authorize``
shows a page where they choose who they are (an organisation, a person, a system or the
administrator), ``/devhost/token`` exchanges the code for an access token signed with the same key
as ``python -m devhost token`` and an ID token, and ``/devhost/logout`` sends them back. Public
clients only (no client secrets, PKCE S256 required); redirect URIs are loopback addresses, as
RFC 8252 has native and local apps use, so a code never leaves the machine. Codes live 60 s in the
state directory, where every devhost instance finds them (devhost/signin_codes.py), and are used once. devhost keeps no session: every sign-in asks who you are.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from devhost.issuer import KEY_FILE, issue_token
from devhost.responses import Response, json_response
from devhost.signin_codes import CodeStore
from shared.adapters.local_issuer import key_id, load_private_key
from shared.identity.parties import valid_national_identity_number, valid_organisation_number

PARTY_SCOPES = ("events.publish", "events.read", "events.subscribe", "notifications.order")
ADMIN_SCOPES = (*PARTY_SCOPES, "admin")
# OpenID Connect scopes: they shape the ID token, never the access token's ``scp``. offline_access is
# accepted in a request but not granted: devhost issues no refresh tokens.
OIDC_SCOPES = ("openid", "profile")
ADMIN_SUBJECT = "system:herald-admin"
DEFAULT_ORGANISATION = "991825827"
CODE_TTL_SECONDS = 60
TOKEN_TTL_SECONDS = 3600

# Patterns are matched whole (``fullmatch``): ``$`` would let a trailing newline through.
_LOOPBACK_REDIRECT = re.compile(r"https?://(?:127\.0\.0\.1|localhost|\[::1\])(?::[0-9]{1,5})?(?:/[!-\"$-\[\]-~]*)?")
_LOOPBACK_ORIGIN = re.compile(r"https?://(?:127\.0\.0\.1|localhost|\[::1\])(?::[0-9]{1,5})?")
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # base64url of a SHA-256 digest, unpadded
_SYSTEM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # Herald's system ids (shared/identity/parties.py)
_CLIENT_ID = re.compile(r"[!-~]{1,200}")

STYLESHEET = b"""\
:root { color-scheme: light; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
body { margin: 0; background: #f4f5f7; color: #1b1b1f; line-height: 1.5; font-size: 1rem; }
main { max-width: 40rem; margin: 0 auto; padding: 1.25rem 1rem 3rem; }
h1 { font-size: 1.6rem; margin: 0.5rem 0 0.25rem; }
p.lead, p.hint { color: #3b3d45; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.25rem 0.75rem; margin: 0 0 1rem; }
dt { font-weight: 600; }
dd { margin: 0; overflow-wrap: anywhere; }
form { margin: 0 0 1rem; }
fieldset { background: #fff; border: 1px solid #8a8d96; border-radius: 0.5rem; padding: 1rem; margin: 0; }
legend { font-weight: 700; font-size: 1.1rem; padding: 0 0.25rem; }
label { display: block; font-weight: 600; margin-bottom: 0.25rem; }
input[type=text] { box-sizing: border-box; width: 100%; font-size: 1.1rem; padding: 0.6rem; min-height: 2.75rem;
  border: 2px solid #5a5d66; border-radius: 0.35rem; color: #1b1b1f; background: #fff; }
input[aria-invalid=true] { border-color: #a4000f; }
button { font-size: 1rem; font-weight: 600; min-height: 2.75rem; padding: 0.6rem 1.1rem; margin-top: 0.75rem;
  border: 2px solid #0b4f8a; border-radius: 0.35rem; background: #0b4f8a; color: #fff; cursor: pointer; }
button.secondary { background: #fff; color: #0b4f8a; }
button:hover { background: #093f6e; color: #fff; }
:focus-visible { outline: 3px solid #c45200; outline-offset: 2px; }
.error { color: #a4000f; font-weight: 600; margin: 0.5rem 0 0; }
.problem { background: #fff; border: 2px solid #a4000f; border-radius: 0.5rem; padding: 1rem; }
code { font-size: 0.95em; overflow-wrap: anywhere; }
@media (max-width: 30rem) { dl { grid-template-columns: 1fr; } dd { margin-bottom: 0.5rem; } }
"""


class AuthorizeError(ValueError):
    """An authorization request devhost refuses with an error page (never a redirect)."""


@dataclass(frozen=True)
class AuthorizeRequest:
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...] | None  # None: no scope parameter, so whatever the identity may have
    state: str | None
    code_challenge: str
    nonce: str | None
    prompt: str | None

    def hidden_fields(self) -> list[tuple[str, str]]:
        fields = [
            ("response_type", "code"),
            ("client_id", self.client_id),
            ("redirect_uri", self.redirect_uri),
            ("code_challenge", self.code_challenge),
            ("code_challenge_method", "S256"),
        ]
        if self.scopes is not None:
            fields.append(("scope", " ".join(self.scopes)))
        if self.state is not None:
            fields.append(("state", self.state))
        if self.nonce is not None:
            fields.append(("nonce", self.nonce))
        return fields


@dataclass(frozen=True)
class Identity:
    subject: str
    name: str
    may_have: tuple[str, ...]


@dataclass(frozen=True)
class Grant:
    request: AuthorizeRequest
    identity: Identity
    scopes: tuple[str, ...]  # granted: OpenID Connect scopes and API scopes
    expires_at: float

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Grant:
        request = dict(document["request"])
        scopes = request.pop("scopes")
        identity = dict(document["identity"])
        return cls(
            AuthorizeRequest(**request, scopes=None if scopes is None else tuple(scopes)),
            Identity(identity["subject"], identity["name"], tuple(identity["may_have"])),
            tuple(document["scopes"]),
            float(document["expires_at"]),
        )


def loopback_redirect_uri(uri: str) -> bool:
    """http(s) on 127.0.0.1, localhost or [::1], any port, no user info, no fragment (RFC 8252 §7.3)."""
    return bool(_LOOPBACK_REDIRECT.fullmatch(uri))


def loopback_origin(origin: str) -> bool:
    return bool(_LOOPBACK_ORIGIN.fullmatch(origin))


def granted_scopes(requested: Sequence[str] | None, identity: Identity) -> tuple[str, ...]:
    """What was asked for and the identity may have; no scope parameter asks for all it may have."""
    if requested is None:
        return identity.may_have
    oidc = tuple(scope for scope in OIDC_SCOPES if scope in requested)
    return oidc + tuple(scope for scope in identity.may_have if scope in requested)


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode("ascii")


def _single_values(raw: str) -> dict[str, str]:
    """Form or query parameters; RFC 6749 §3.1 forbids sending one twice."""
    values: dict[str, str] = {}
    for name, items in parse_qs(raw, keep_blank_values=True).items():
        if len(items) > 1:
            raise AuthorizeError(f"the parameter {name} is given more than once")
        values[name] = items[0]
    return values


def parse_authorize_request(params: Mapping[str, str]) -> AuthorizeRequest:
    """The authorization request, or AuthorizeError saying what is wrong with it."""
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri:
        raise AuthorizeError("redirect_uri is missing: devhost has no registered redirect URIs to fall back on")
    if not loopback_redirect_uri(redirect_uri):
        raise AuthorizeError(
            "redirect_uri must be a loopback address: http(s)://127.0.0.1, http(s)://localhost or "
            "http(s)://[::1], any port, with no user info or fragment"
        )
    client_id = params.get("client_id", "")
    if not _CLIENT_ID.fullmatch(client_id):
        raise AuthorizeError("client_id is missing or not printable ASCII")
    response_type = params.get("response_type", "")
    if response_type != "code":
        raise AuthorizeError(f"response_type must be code (authorization code flow), not '{response_type}'")
    method = params.get("code_challenge_method", "")
    challenge = params.get("code_challenge", "")
    if not challenge:
        raise AuthorizeError("code_challenge is missing: PKCE (RFC 7636) with S256 is required")
    if method != "S256":
        shown = method or "absent, which means plain"
        raise AuthorizeError(f"code_challenge_method must be S256 (it is {shown})")
    if not _CHALLENGE.fullmatch(challenge):
        raise AuthorizeError("code_challenge is not a base64url SHA-256 digest (43 characters)")
    scope = params.get("scope")
    return AuthorizeRequest(
        client_id=client_id,
        redirect_uri=redirect_uri,
        scopes=tuple(scope.split()) if scope is not None else None,
        state=params.get("state"),
        code_challenge=challenge,
        nonce=params.get("nonce") or None,
        prompt=params.get("prompt") or None,
    )


def chosen_identity(form: Mapping[str, str]) -> Identity:
    """The identity the person chose on the page; ValueError says what to correct."""
    kind = form.get("identity", "")
    if kind == "org":
        number = form.get("org", "").replace(" ", "")
        if not valid_organisation_number(number):
            raise ValueError("Enter an organisation number of 9 digits with a valid check digit, like 991825827.")
        return Identity(f"org:{number}", f"Organisation {number}", PARTY_SCOPES)
    if kind == "person":
        number = form.get("person", "").replace(" ", "")
        if not valid_national_identity_number(number):
            raise ValueError("Enter a national identity number of 11 digits with valid check digits.")
        return Identity(f"person:{number}", f"Person {number}", PARTY_SCOPES)
    if kind == "system":
        name = form.get("system", "").strip()
        if not _SYSTEM_NAME.fullmatch(name):
            raise ValueError(
                "Enter a system name of 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit."
            )
        if name.lower() == "herald" or name.lower().startswith("herald-"):
            raise ValueError("System names starting with 'herald' are Herald's own; choose another name.")
        return Identity(f"system:{name}", f"System {name}", PARTY_SCOPES)
    if kind == "admin":
        return Identity(ADMIN_SUBJECT, "Herald administrator", ADMIN_SCOPES)
    raise ValueError("Choose who you are: an organisation, a person, a system or the administrator.")


def _with_query(uri: str, params: Mapping[str, str | None]) -> str:
    parts = urlsplit(uri)
    added = urlencode({name: value for name, value in params.items() if value is not None})
    query = f"{parts.query}&{added}" if parts.query else added
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"


def _redirect(location: str, status: int = 302) -> Response:
    return Response(
        status, b"", [("location", location), ("cache-control", "no-store"), ("referrer-policy", "no-referrer")]
    )


def token_error(error: str, description: str, status: int = 400) -> Response:
    """RFC 6749 §5.2."""
    response = json_response(status, {"error": error, "error_description": description})
    return Response(status, response.body, [*response.headers, ("cache-control", "no-store"), ("pragma", "no-cache")])


def with_cors(response: Response, request_headers: Mapping[str, str]) -> Response:
    """Let loopback pages read the answer: the console may be at localhost while the issuer is 127.0.0.1."""
    origin = request_headers.get("origin", "")
    headers = [*response.headers, ("vary", "Origin")]
    if loopback_origin(origin):
        headers.append(("access-control-allow-origin", origin))
    return Response(response.status, response.body, headers)


def _preflight(request_headers: Mapping[str, str]) -> Response:
    headers = [("vary", "Origin")]
    origin = request_headers.get("origin", "")
    if loopback_origin(origin):
        asked = request_headers.get("access-control-request-headers", "")
        allowed = ", ".join(
            name for name in (h.strip() for h in asked.split(",")) if re.fullmatch(r"[A-Za-z0-9-]+", name)
        )
        headers += [
            ("access-control-allow-origin", origin),
            ("access-control-allow-methods", "GET, POST, OPTIONS"),
            ("access-control-allow-headers", allowed or "Content-Type"),
            ("access-control-max-age", "600"),
        ]
    return Response(204, b"", headers)


class LocalSignIn:
    """The authorization server's endpoints under devhost's issuer path."""

    def __init__(
        self,
        state_dir: Path,
        *,
        issuer: str | None = None,
        clock: Callable[[], float] = time.time,
        prefix: str = "/devhost",
    ) -> None:
        self._state_dir = state_dir
        self._issuer = issuer
        self._clock = clock
        self._prefix = prefix
        self._codes = CodeStore(state_dir)
        self._key: tuple[int, rsa.RSAPrivateKey] | None = None

    def metadata(self, base: str) -> dict[str, Any]:
        """What the OpenID discovery document adds for sign-in."""
        return {
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "end_session_endpoint": f"{base}/logout",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": [*OIDC_SCOPES, *ADMIN_SCOPES],
            "subject_types_supported": ["public"],
            "token_endpoint_auth_methods_supported": ["none"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "name"],
            "prompt_values_supported": ["none", "login"],
        }

    async def respond(
        self, method: str, path: str, query_string: str, headers: Mapping[str, str], body: bytes, base: str
    ) -> Response | None:
        """The answer for a sign-in path, or None for paths this does not serve."""
        endpoint = path[len(self._prefix) :] if path.startswith(self._prefix + "/") else ""
        if method == "OPTIONS" and endpoint in ("/token", "/jwks.json", "/.well-known/openid-configuration"):
            return _preflight(headers)
        if endpoint == "/signin.css":
            return Response(
                200,
                STYLESHEET,
                [
                    ("content-type", "text/css; charset=utf-8"),
                    ("x-content-type-options", "nosniff"),
                    ("cache-control", "no-cache"),
                ],
            )
        if endpoint == "/authorize":
            return self._authorize(method, query_string, headers, body)
        if endpoint == "/token":
            if method != "POST":
                response = token_error("invalid_request", "the token endpoint takes POST", 405)
                return with_cors(Response(405, response.body, [*response.headers, ("allow", "POST, OPTIONS")]), headers)
            return with_cors(await self._token(headers, body, base), headers)
        if endpoint == "/logout":
            return self._logout(method, query_string)
        return None

    # ------------------------------------------------------------------ authorize

    def _authorize(self, method: str, query_string: str, headers: Mapping[str, str], body: bytes) -> Response:
        if method not in ("GET", "POST"):
            return self._error_page(405, "The sign-in page takes GET (the request) and POST (your choice).")
        try:
            params = _single_values(query_string if method == "GET" else body.decode("utf-8", "replace"))
            request = parse_authorize_request(params)
        except AuthorizeError as error:
            return self._error_page(400, str(error))
        if not (self._state_dir / KEY_FILE).exists():
            return self._error_page(
                500, f"devhost's issuer key is not in {self._state_dir}; start devhost with its state directory."
            )
        if method == "GET":
            if request.prompt == "none":  # no session to reuse: the client must show the page (OIDC Core §3.1.2.6)
                return _redirect(_with_query(request.redirect_uri, {"error": "login_required", "state": request.state}))
            return self._page(request)
        origin = headers.get("origin")
        if origin is not None and origin != "null" and not loopback_origin(origin):
            return self._error_page(403, "The sign-in form was sent from a page that is not on this machine.")
        if params.get("identity") == "cancel":
            return _redirect(
                _with_query(
                    request.redirect_uri,
                    {
                        "error": "access_denied",
                        "error_description": "the person cancelled the sign-in",
                        "state": request.state,
                    },
                ),
                303,
            )
        try:
            identity = chosen_identity(params)
        except ValueError as error:
            return self._page(request, params, str(error), status=400)
        self._codes.forget_expired(self._clock())
        code = secrets.token_urlsafe(32)
        scopes = granted_scopes(request.scopes, identity)
        self._codes.put(code, asdict(Grant(request, identity, scopes, self._clock() + CODE_TTL_SECONDS)))
        return _redirect(_with_query(request.redirect_uri, {"code": code, "state": request.state}), 303)

    def _html(self, status: int, title: str, content: str, form_targets: Sequence[str] = ()) -> Response:
        # form-action also governs where a form submission may be redirected (Chrome), so the
        # validated redirect URI's origin is allowed besides 'self'.
        form_action = " ".join(["'self'", *dict.fromkeys(form_targets)])
        policy = (
            "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
            f"form-action {form_action}; frame-ancestors 'none'"
        )
        document = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="{self._prefix}/signin.css">
<link rel="icon" href="/console/favicon.svg" type="image/svg+xml">
</head>
<body>
<main>
{content}
</main>
</body>
</html>
"""
        headers = [
            ("content-type", "text/html; charset=utf-8"),
            ("content-security-policy", policy),
            ("x-frame-options", "DENY"),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
            ("cache-control", "no-store"),
        ]
        return Response(status, document.encode("utf-8"), headers)

    def _error_page(self, status: int, message: str) -> Response:
        content = (
            "<h1>Sign in to Herald (local): the request cannot be used</h1>\n"
            f'<div class="problem" role="alert"><p>{html.escape(message)}</p></div>\n'
            '<p class="hint">Nothing was sent back to the application. Go back to it and start the sign-in again.</p>'
        )
        return self._html(status, "Sign-in error - Herald (local)", content)

    def _page(
        self, request: AuthorizeRequest, form: Mapping[str, str] | None = None, error: str = "", status: int = 200
    ) -> Response:
        form = form or {}
        chosen = form.get("identity", "")
        hidden = "\n".join(
            f'<input type="hidden" name="{name}" value="{html.escape(value)}">'
            for name, value in request.hidden_fields()
        )
        asked = " ".join(request.scopes) if request.scopes is not None else "(none named: all the identity may have)"

        def field(kind: str, label: str, hint: str, default: str, extra: str) -> str:
            value = form.get(kind, default) if chosen == kind else default
            invalid = chosen == kind and bool(error)
            described = f"{kind}-hint {kind}-error" if invalid else f"{kind}-hint"
            message = f'<p class="error" id="{kind}-error">{html.escape(error)}</p>' if invalid else ""
            flags = ' aria-invalid="true" autofocus' if invalid else ""
            return (
                f'<label for="{kind}">{label}</label>\n'
                f'<p class="hint" id="{kind}-hint">{hint}</p>\n'
                f'<input type="text" id="{kind}" name="{kind}" value="{html.escape(value)}" '
                f'aria-describedby="{described}"{flags} {extra}>\n{message}'
            )

        def section(kind: str, legend: str, body: str, button: str) -> str:
            return (
                f'<form method="post" action="{self._prefix}/authorize">\n{hidden}\n'
                f'<input type="hidden" name="identity" value="{kind}">\n'
                f"<fieldset>\n<legend>{legend}</legend>\n{body}\n"
                f'<button type="submit">{button}</button>\n</fieldset>\n</form>'
            )

        digits = 'inputmode="numeric" autocomplete="off" spellcheck="false"'
        sections = [
            section(
                "org",
                "An organisation",
                field(
                    "org",
                    "Organisation number",
                    "9 digits, e.g. 991825827. You become <code>org:&lt;number&gt;</code>.",
                    DEFAULT_ORGANISATION,
                    digits,
                ),
                "Sign in as this organisation",
            ),
            section(
                "person",
                "A person",
                field(
                    "person",
                    "National identity number",
                    "11 digits. You become <code>person:&lt;number&gt;</code>.",
                    "",
                    digits,
                ),
                "Sign in as this person",
            ),
            section(
                "system",
                "A system",
                field(
                    "system",
                    "System name",
                    "Letters, digits, '.', '_' or '-'. You become <code>system:&lt;name&gt;</code>.",
                    "",
                    'autocomplete="off" spellcheck="false" autocapitalize="none"',
                ),
                "Sign in as this system",
            ),
            section(
                "admin",
                "The administrator",
                f'<p class="hint">You become <code>{ADMIN_SUBJECT}</code>, which may also have the <code>admin</code> scope.</p>',
                "Sign in as administrator",
            ),
        ]
        # The summary links to the field to correct, when there is one.
        link = (
            f'<a href="#{chosen}">{html.escape(error)}</a>'
            if chosen in ("org", "person", "system")
            else html.escape(error)
        )
        summary = f'<div class="problem" role="alert"><p>Check your choice: {link}</p></div>\n' if error else ""
        cancel = (
            f'<form method="post" action="{self._prefix}/authorize">\n{hidden}\n'
            '<input type="hidden" name="identity" value="cancel">\n'
            '<button type="submit" class="secondary">Cancel and go back</button>\n</form>'
        )
        content = f"""<h1>Sign in to Herald (local)</h1>
<p class="lead">devhost's local issuer: choose who you are. Nothing is checked against a register; this is for development on this machine.</p>
{summary}<dl>
<dt>Application</dt><dd><code>{html.escape(request.client_id)}</code></dd>
<dt>Returns to</dt><dd><code>{html.escape(request.redirect_uri)}</code></dd>
<dt>Scopes asked for</dt><dd><code>{html.escape(asked)}</code></dd>
</dl>
{chr(10).join(sections)}
{cancel}"""
        return self._html(status, "Sign in to Herald (local)", content, [_origin(request.redirect_uri)])

    # ------------------------------------------------------------------ token

    async def _token(self, headers: Mapping[str, str], body: bytes, base: str) -> Response:
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return token_error("invalid_request", "send the token request as application/x-www-form-urlencoded")
        try:
            form = _single_values(body.decode("utf-8"))
        except (AuthorizeError, UnicodeDecodeError) as error:
            return token_error(
                "invalid_request", str(error) if isinstance(error, AuthorizeError) else "the body is not UTF-8"
            )
        grant_type = form.get("grant_type", "")
        if grant_type != "authorization_code":
            return token_error("unsupported_grant_type", "only grant_type=authorization_code is supported")
        for name in ("code", "redirect_uri", "client_id", "code_verifier"):
            if not form.get(name):
                return token_error("invalid_request", f"{name} is required")
        if not _VERIFIER.fullmatch(form["code_verifier"]):
            return token_error("invalid_request", "code_verifier must be 43-128 characters of A-Z a-z 0-9 - . _ ~")
        # Presenting a code uses it up, whatever follows: a guessed verifier gets one try.
        taken = self._codes.take(form["code"])
        grant = None if taken is None else Grant.from_document(taken)
        if grant is None or grant.expires_at <= self._clock():
            return token_error("invalid_grant", "the code is unknown, was already used or has expired")
        if form["client_id"] != grant.request.client_id:
            return token_error("invalid_grant", "the code was issued to another client_id")
        if form["redirect_uri"] != grant.request.redirect_uri:
            return token_error("invalid_grant", "redirect_uri differs from the one in the authorization request")
        if not secrets.compare_digest(s256(form["code_verifier"]), grant.request.code_challenge):
            return token_error("invalid_grant", "code_verifier does not match the code_challenge (S256)")
        # Loading and using the RSA key takes a while: off the event loop that serves every request.
        return await asyncio.to_thread(self._tokens, grant, base)

    def _tokens(self, grant: Grant, base: str) -> Response:
        identity = grant.identity
        api_scopes = [scope for scope in grant.scopes if scope not in OIDC_SCOPES]
        # The access token carries what `python -m devhost token` gives: HERALD_AUTH_* defaults.
        access_token = issue_token(
            identity.subject,
            api_scopes,
            ttl=TOKEN_TTL_SECONDS,
            issuer=self._issuer,
            state_dir=self._state_dir,
            extra_claims={"azp": grant.request.client_id, "name": identity.name},
        )
        document: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": TOKEN_TTL_SECONDS,
            "scope": " ".join(grant.scopes),
        }
        if "openid" in grant.scopes:
            document["id_token"] = self._id_token(grant, self._issuer or base)
        body = json.dumps(document).encode("utf-8")
        return Response(
            200, body, [("content-type", "application/json"), ("cache-control", "no-store"), ("pragma", "no-cache")]
        )

    def _id_token(self, grant: Grant, issuer: str) -> str:
        key = self._signing_key()
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": issuer,
            "aud": grant.request.client_id,
            "azp": grant.request.client_id,
            "sub": grant.identity.subject,
            "name": grant.identity.name,
            "iat": now,
            "auth_time": int(grant.expires_at) - CODE_TTL_SECONDS,
            "exp": now + TOKEN_TTL_SECONDS,
            "jti": str(uuid.uuid4()),
        }
        if grant.request.nonce is not None:
            claims["nonce"] = grant.request.nonce
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": key_id(key.public_key()), "typ": "JWT"})

    def _signing_key(self) -> rsa.RSAPrivateKey:
        """The issuer's key, loaded again only when its file changed (loading checks the key, slowly)."""
        path = self._state_dir / KEY_FILE
        stamp = path.stat().st_mtime_ns
        if self._key is None or self._key[0] != stamp:
            self._key = (stamp, load_private_key(path))
        return self._key[1]

    # ------------------------------------------------------------------ logout

    def _logout(self, method: str, query_string: str) -> Response:
        if method not in ("GET", "POST"):
            return self._error_page(405, "Sign out with GET.")
        try:
            params = _single_values(query_string)
        except AuthorizeError as error:
            return self._error_page(400, str(error))
        target = params.get("post_logout_redirect_uri")
        if target is None:
            content = (
                "<h1>Signed out of Herald (local)</h1>\n"
                '<p class="lead">devhost keeps no session: the next sign-in asks who you are again.</p>'
            )
            return self._html(200, "Signed out - Herald (local)", content)
        if not loopback_redirect_uri(target):
            return self._error_page(
                400, "post_logout_redirect_uri must be a loopback address (127.0.0.1, localhost or [::1])."
            )
        return _redirect(_with_query(target, {"state": params.get("state")}))
