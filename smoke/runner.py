"""The smoke steps: health, publish and read back, subscribe and push, an email notification.

Each step prints one line with its outcome and timing; the first failure stops the run with a line
saying what to check. A subscription the run creates is deleted again, whatever happens.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO, TypeVar
from urllib.parse import urlencode, urlsplit

import httpx
import jwt
from standardwebhooks import Webhook, WebhookVerificationError

from smoke.receiver import LoopbackReceiver

SCOPES = ("events.publish", "events.read", "events.subscribe", "notifications.order")
DEFAULT_RESOURCE = "urn:smoke:herald"
SOURCE = "urn:herald:smoke"
READ_TYPE = "herald.smoke.published"
PUSH_TYPE = "herald.smoke.pushed"
# Herald's local sink reports Delivered for any address without a special local part (docs/notifications.md).
LOCAL_SINK_ADDRESS = "smoke@example.com"
# Notification statuses that still change (docs/notifications.md, "Status machine"); every other one is final.
UNSETTLED = {"New", "Sending", "Succeeded", "Accepted"}
POLL_SECONDS = 0.5
T = TypeVar("T")


class StepFailed(Exception):
    """A step's failure: what happened, and what the user should check."""

    def __init__(self, what: str, check: str) -> None:
        super().__init__(what)
        self.what = what
        self.check = check


@dataclass(frozen=True)
class Options:
    url: str
    token: str
    admin_token: str | None
    resource: str
    endpoint: str | None
    email: str
    wait: float


def token_subject(token: str) -> str | None:
    """The ``sub`` of the caller's own token: Herald names the caller by it. Herald verifies the token, not us."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    subject = claims.get("sub")
    return subject if isinstance(subject, str) else None


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Smoke:
    def __init__(self, options: Options, client: httpx.Client, out: TextIO) -> None:
        self.options = options
        self.client = client
        self.out = out
        self.run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        self.subject = token_subject(options.token)
        self.steps = 0

    # --- the run ---------------------------------------------------------------------------------

    def run(self) -> None:
        started = time.monotonic()
        resource = self.options.resource
        self._write(f"Herald smoke test of {self.options.url} on {resource} (run {self.run_id})")
        self.step("health", self.health)
        if self.options.admin_token:
            self.step("policy", self.policy)
        read_id = f"smoke-{self.run_id}-read"
        cursor = self.step("cursor", self.cursor)
        self.step("publish", lambda: self.publish(read_id, READ_TYPE))
        self.step("read back", lambda: self.read_back(cursor, read_id))
        with self.push_target() as (endpoint, receiver):
            subscription = self.step("subscribe", lambda: self.subscribe(endpoint))
            try:
                self.step("validated", lambda: self.validated(subscription))
                push_id = f"smoke-{self.run_id}-push"
                if receiver is not None:
                    self.step("push", lambda: self.pushed_to_receiver(push_id, subscription, receiver))
                else:
                    self.step("push", lambda: self.pushed_per_delivery_log(push_id, subscription))
            finally:
                self.step("unsubscribe", lambda: self.unsubscribe(subscription))
        order = self.step("order email", self.order_email)
        self.step("delivered", lambda: self.delivered(order))
        self._write(f"all {self.steps} steps passed in {time.monotonic() - started:.1f}s")

    def step(self, name: str, action: Callable[[], tuple[T, str]]) -> T:
        """Runs one step and prints its line; a failure prints what to check and stops the run."""
        started = time.monotonic()
        try:
            result, detail = action()
        except StepFailed as failure:
            self._line("FAIL", name, started, failure.what)
            self._write(f"{'':6}check: {failure.check}")
            raise
        self.steps += 1
        self._line("ok", name, started, detail)
        return result

    def _line(self, outcome: str, name: str, started: float, detail: str) -> None:
        self._write(f"{outcome:<4}  {name:<12} {time.monotonic() - started:6.2f}s  {detail}")

    def _write(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    # --- steps: each returns (what later steps need, the detail for its line) ---------------------

    def health(self) -> tuple[None, str]:
        response = self.call("GET", "/api/v1/health", expect=(200,), token=None, scope=None)
        if _json(response) != {"status": "ok"}:
            raise StepFailed(
                f'GET /api/v1/health answered {response.text[:200]!r}, not Herald\'s {{"status": "ok"}}',
                f"that {self.options.url} is Herald's base URL (HERALD_API_URL from `azd env get-values`)",
            )
        return None, "Herald answers"

    def policy(self) -> tuple[None, str]:
        resource = self.options.resource
        if self.subject is None:
            raise StepFailed("the token has no readable subject (sub)", "that --token is a JWT access token")
        path = f"/api/v1/admin/policies/{resource}"
        admin = self.options.admin_token
        existing = self.call("GET", path, expect=(200, 404), token=admin, scope="admin")
        if existing.status_code == 200:
            return None, f"{resource} already has a policy; left as it is"
        policy = {"publishers": [self.subject], "owners": [self.subject]}
        self.call("PUT", path, expect=(200,), token=admin, scope="admin", json=policy)
        return None, f"put: {self.subject} publishes to {resource} and reads and subscribes to all of it"

    def publish(self, event_id: str, event_type: str) -> tuple[None, str]:
        event = {
            "specversion": "1.0",
            "id": event_id,
            "source": SOURCE,
            "type": event_type,
            "resource": self.options.resource,
            "time": datetime.now(UTC).isoformat(),
            "data": {"run": self.run_id},
        }
        response = self.call(
            "POST",
            "/api/v1/events",
            expect=(202,),
            scope="events.publish",
            content=json.dumps(event).encode(),
            headers={"Content-Type": "application/cloudevents+json"},
        )
        answer = _json(response)
        if not isinstance(answer, dict) or answer.get("accepted") != [event_id]:
            raise StepFailed(f"POST /api/v1/events did not accept {event_id}: {response.text[:200]}", "Herald's log")
        return None, f"{event_id} accepted"

    def cursor(self) -> tuple[str, str]:
        """Reads from the oldest, following Link rel=next to the end: where the next event will appear."""
        query = {"resource": self.options.resource, "type": READ_TYPE, "size": "1000"}
        cursor, pages = self._follow(
            "/api/v1/events?" + urlencode(query),
            lambda events: not events,
            lambda pages: StepFailed(
                f"the end of {self.options.resource}'s events was not reached within {self.options.wait:.0f}s "
                f"({pages} pages)",
                "that Herald answers GET /api/v1/events promptly; raise --wait for a long log",
            ),
        )
        return cursor, f"at the end of {self.options.resource} after {pages} page(s)"

    def read_back(self, cursor: str, event_id: str) -> tuple[None, str]:
        """Follows the cursor taken before publishing until the event appears, as a polling consumer does."""
        _, pages = self._follow(
            cursor,
            lambda events: any(isinstance(e, dict) and e.get("id") == event_id for e in events),
            lambda pages: StepFailed(
                f"{event_id} did not appear within {self.options.wait:.0f}s ({pages} pages)",
                f"that the policy of {self.options.resource} lets {self._caller()} read its events "
                "(owners, or a rule granting read): Herald leaves out events a reader may not see",
            ),
        )
        return None, f"{event_id} read through the cursor taken before publishing ({pages} page(s))"

    def _follow(
        self, url: str, found: Callable[[list[Any]], bool], late: Callable[[int], StepFailed]
    ) -> tuple[str, int]:
        """GETs ``url`` and its Link rel=next pages until a page is ``found``: (that page's next link, pages read)."""
        pages = 0
        deadline = time.monotonic() + self.options.wait
        while True:
            response = self.call("GET", url, expect=(200,), scope="events.read")
            pages += 1
            events = _json(response)
            if not isinstance(events, list):
                raise StepFailed(f"GET {url} answered {response.text[:200]!r}, not a JSON array", "Herald's log")
            next_url = response.links.get("next", {}).get("url")
            if not next_url:
                raise StepFailed(f"GET {url} answered without a Link rel=next header", "Herald's events API")
            if found(events):
                return next_url, pages
            if time.monotonic() > deadline:
                raise late(pages)
            url = next_url
            if not events:
                time.sleep(POLL_SECONDS)

    @contextmanager
    def push_target(self) -> Iterator[tuple[str, LoopbackReceiver | None]]:
        """The user's endpoint, or else a receiver of our own on loopback (devhost pushes there)."""
        if self.options.endpoint:
            yield self.options.endpoint, None
            return
        with LoopbackReceiver() as receiver:
            yield receiver.url, receiver

    def subscribe(self, endpoint: str) -> tuple[dict[str, Any], str]:
        body = {"endPoint": endpoint, "resourceFilter": self.options.resource, "typeFilter": PUSH_TYPE}
        response = self.call("POST", "/api/v1/subscriptions", expect=(200, 201), scope="events.subscribe", json=body)
        created = _json(response)
        if not isinstance(created, dict) or not isinstance(created.get("id"), str):
            raise StepFailed(f"POST /api/v1/subscriptions answered {response.text[:200]!r}", "Herald's log")
        return created, f"subscription {created['id']} to {endpoint} is {created.get('status')}"

    def validated(self, subscription: dict[str, Any]) -> tuple[None, str]:
        path = f"/api/v1/subscriptions/{subscription['id']}"
        endpoint = subscription.get("endPoint")

        def active() -> bool:
            view = _json(self.call("GET", path, expect=(200,), scope="events.subscribe"))
            status = view.get("status") if isinstance(view, dict) else None
            if status == "disabled":
                raise StepFailed(
                    f"the subscription was disabled: {view.get('disabledReason')}",
                    f"that {endpoint} answers Herald's validation event (a POST) with 2xx",
                )
            return status == "active"

        self._until(
            active,
            StepFailed(
                f"the subscription was not active within {self.options.wait:.0f}s",
                f"that {endpoint} is reachable from Herald (public https in Azure) and answers its POSTs with 2xx",
            ),
        )
        return None, "the endpoint accepted the validation event: active"

    def pushed_to_receiver(
        self, event_id: str, subscription: dict[str, Any], receiver: LoopbackReceiver
    ) -> tuple[None, str]:
        self.publish(event_id, PUSH_TYPE)
        push = self._until(
            lambda: receiver.push_of(event_id),
            StepFailed(
                f"{event_id} was not pushed within {self.options.wait:.0f}s",
                f"the delivery log, GET /api/v1/subscriptions/{subscription['id']}/deliveries",
            ),
        )
        try:
            Webhook(subscription["secret"]).verify(push.body, push.headers)
        except (KeyError, WebhookVerificationError) as error:
            raise StepFailed(
                f"the push of {event_id} does not verify as a Standard Webhook: {error!r}",
                "that Herald signs pushes with the secret its create response returned",
            ) from error
        return None, f"{event_id} pushed to {receiver.url}, signature verified"

    def pushed_per_delivery_log(self, event_id: str, subscription: dict[str, Any]) -> tuple[None, str]:
        self.publish(event_id, PUSH_TYPE)
        path = f"/api/v1/subscriptions/{subscription['id']}/deliveries"
        attempts: list[dict[str, Any]] = []

        def delivered() -> dict[str, Any] | None:
            log = _json(self.call("GET", path, expect=(200,), scope="events.subscribe"))
            entries = log.get("deliveries", []) if isinstance(log, dict) else []
            attempts[:] = [a for a in entries if isinstance(a, dict) and a.get("eventId") == event_id]
            return next((a for a in attempts if a.get("outcome") == "delivered"), None)

        def timed_out() -> StepFailed:
            last = attempts[0] if attempts else None
            seen = (
                f"last attempt: {last.get('outcome')}, HTTP {last.get('statusCode')}, {last.get('error') or ''}"
                if last
                else "no attempt in the delivery log"
            )
            return StepFailed(
                f"{event_id} was not delivered within {self.options.wait:.0f}s; {seen}",
                f"that {subscription.get('endPoint')} answers POSTs with 2xx; the log: GET {path}",
            )

        attempt = self._until(delivered, timed_out)
        return None, (
            f"{event_id} delivered to {subscription.get('endPoint')} "
            f"(HTTP {attempt.get('statusCode')}, {attempt.get('latencyMs')} ms), per Herald's delivery log"
        )

    def unsubscribe(self, subscription: dict[str, Any]) -> tuple[None, str]:
        self.call("DELETE", f"/api/v1/subscriptions/{subscription['id']}", expect=(204,), scope="events.subscribe")
        return None, f"subscription {subscription['id']} deleted"

    def order_email(self) -> tuple[str, str]:
        order = {
            "idempotencyId": f"smoke-{self.run_id}",
            "sendersReference": f"smoke-{self.run_id}",
            "notificationChannel": "Email",
            "emailTemplate": {
                "subject": "Herald smoke test",
                "body": f"Herald's smoke test {self.run_id} sent this message; no action is needed.",
            },
            "recipients": [{"emailAddress": self.options.email}],
        }
        response = self.call(
            "POST", "/api/v1/notifications/orders", expect=(202,), scope="notifications.order", json=order
        )
        answer = _json(response)
        if not isinstance(answer, dict) or not isinstance(answer.get("orderId"), str):
            raise StepFailed(f"the order was answered with {response.text[:200]!r}", "Herald's log")
        return answer["orderId"], f"order {answer['orderId']} to {self.options.email}"

    def delivered(self, order_id: str) -> tuple[None, str]:
        path = f"/api/v1/notifications/orders/{order_id}/status"
        statuses: list[str] = []

        def settled() -> list[dict[str, Any]] | None:
            view = _json(self.call("GET", path, expect=(200,), scope="notifications.order"))
            processing = view.get("processingStatus", {}).get("status") if isinstance(view, dict) else None
            if processing in ("SendConditionNotMet", "Cancelled"):
                raise StepFailed(f"the order ended as {processing}", f"GET {path}")
            notifications = view.get("notifications", []) if isinstance(view, dict) else []
            statuses[:] = [n.get("sendStatus", {}).get("status") for n in notifications]
            if notifications and not UNSETTLED.intersection(statuses):
                return list(notifications)
            return None

        notifications = self._until(
            settled,
            lambda: StepFailed(
                f"the email was not final within {self.options.wait:.0f}s (status {', '.join(statuses) or 'none yet'})",
                f"GET {path}; in Azure, the email domain and the delivery-report subscriptions (docs/deploy.md, section 4)",
            ),
        )
        failed = [n for n in notifications if n.get("sendStatus", {}).get("status") != "Delivered"]
        if failed:
            status = failed[0].get("sendStatus", {})
            raise StepFailed(
                f"the email ended as {status.get('status')}: {status.get('description')}",
                f"the address {self.options.email} and the provider's delivery report; GET {path}",
            )
        return None, f"Delivered to {self.options.email}, per the provider's delivery report"

    # --- HTTP ------------------------------------------------------------------------------------

    def call(
        self,
        method: str,
        url: str,
        *,
        expect: Sequence[int],
        scope: str | None,
        token: str | None = "",
        **request: Any,
    ) -> httpx.Response:
        """One request with the run's token (or ``token``); an unexpected answer fails the step."""
        bearer = self.options.token if token == "" else token
        headers = dict(request.pop("headers", {}))
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        try:
            response = self.client.request(method, url, headers=headers, **request)
        except httpx.HTTPError as error:
            raise StepFailed(
                f"{method} {url} failed: {error!r}",
                f"that {self.options.url} is reachable from here and is Herald's base URL",
            ) from error
        if response.status_code not in expect:
            raise self.refused(response, scope)
        return response

    def refused(self, response: httpx.Response, scope: str | None) -> StepFailed:
        problem = _json(response)
        problem = problem if isinstance(problem, dict) else {}
        detail = problem.get("detail") or response.text[:200]
        what = f"{response.request.method} {response.request.url.path} answered {response.status_code}: {detail}"
        kind = str(problem.get("type", ""))
        status = response.status_code
        if status == 401:
            check = (
                "the token: its audience and issuer must be the ones Herald accepts (HERALD_AUTH_AUDIENCE, "
                "HERALD_AUTH_ISSUER; docs/deploy.md, section 3) and it must not have expired"
            )
        elif status == 403 and kind.endswith(":insufficient-scope"):
            check = f"the token's scopes: it lacks {scope}; the smoke test needs {' '.join(SCOPES)}"
        elif status == 403 and kind.endswith(("publish-forbidden", "subscribe-forbidden")):
            resource = self.options.resource
            check = (
                f"the policy is missing: no policy of {resource} lets {self._caller()} publish, read and "
                f"subscribe. Pass --admin-token to put one, or have an administrator "
                f"PUT /api/v1/admin/policies/{resource} (README, 'Publish an event and read it back')"
            )
        elif status == 400 and "/api/v1/admin/policies/" in response.request.url.path:
            check = (
                f"that the token's subject ({self._caller()}) is an identity a policy can name, and --resource a URN"
            )
        elif status == 404 and response.request.url.path.endswith("/api/v1/health"):
            check = f"that {self.options.url} is Herald's base URL (HERALD_API_URL), without /api/v1"
        elif status >= 500:
            check = (
                "Herald's own errors: Application Insights → Failures in Azure (docs/deploy.md), devhost's log locally"
            )
        else:
            check = "the request the step sent against Herald's API docs (/api/v1/docs)"
        return StepFailed(what, check)

    def _caller(self) -> str:
        return self.subject or "the token's subject"

    def _until(self, probe: Callable[[], T | None], failure: StepFailed | Callable[[], StepFailed]) -> T:
        """Polls ``probe`` until it returns something, for at most --wait seconds."""
        deadline = time.monotonic() + self.options.wait
        while True:
            result = probe()
            if result is not None and result is not False:
                return result
            if time.monotonic() > deadline:
                raise failure if isinstance(failure, StepFailed) else failure()
            time.sleep(POLL_SECONDS)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def parse(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m smoke",
        description="Runs README's flow against a Herald (devhost or Azure) and says which step fails and why.",
    )
    parser.add_argument(
        "--url", default=os.environ.get("HERALD_API_URL"), help="Herald's base URL (default: env HERALD_API_URL)"
    )
    parser.add_argument("--token", required=True, help=f"a bearer token with the scopes {' '.join(SCOPES)}")
    parser.add_argument("--admin-token", help="a token with scope admin: gives --resource a policy if it has none")
    parser.add_argument(
        "--resource",
        default=DEFAULT_RESOURCE,
        help=f"the resource to publish to, whose policy lets the token's subject publish, read and subscribe "
        f"(default {DEFAULT_RESOURCE})",
    )
    parser.add_argument(
        "--endpoint",
        help="a public https webhook that answers POSTs with 2xx; delivery is checked in Herald's delivery log "
        "(default against devhost: a receiver of the smoke test's own, which also verifies the signature)",
    )
    parser.add_argument(
        "--email", help=f"the address to send the test email to (default against devhost: {LOCAL_SINK_ADDRESS})"
    )
    parser.add_argument("--wait", type=float, default=120.0, help="seconds each waiting step waits (default 120)")
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("give --url (or set HERALD_API_URL)")
    if not args.token.strip():
        parser.error("--token is empty")
    url = args.url.rstrip("/").removesuffix("/api/v1")
    local = is_loopback(url)
    if not local and not args.endpoint:
        parser.error("Herald outside devhost pushes only to public https: give --endpoint https://…")
    if not local and not args.email:
        parser.error("Herald outside devhost sends real email: give --email with an address you can read")
    return Options(
        url=url,
        token=args.token.strip(),
        admin_token=args.admin_token.strip() if args.admin_token else None,
        resource=args.resource,
        endpoint=args.endpoint,
        email=args.email or LOCAL_SINK_ADDRESS,
        wait=args.wait,
    )


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    options = parse(argv)
    with httpx.Client(base_url=options.url, timeout=30.0, headers={"User-Agent": "herald-smoke"}) as client:
        try:
            Smoke(options, client, out).run()
        except StepFailed:
            return 1
    return 0
