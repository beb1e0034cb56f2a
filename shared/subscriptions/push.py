"""One signed push: sign the body, send it where the subscription points, and judge the answer. The
outbound worker pushes events with it and the validation handshake pushes the validation event.

Where it points: a webhook (POSTed, with what its gateway asks for: a bearer token as Herald's own
identity, or the subscription's custom headers) or a broker destination (an Event Grid topic, a
Service Bus queue or topic), published through its ``DestinationClient``. Every push is signed
(Standard Webhooks), whatever else it carries. Header values and tokens are secrets: they never
reach a log, and a response that echoes them is redacted before the delivery log keeps it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from shared.clock import Clock
from shared.subscriptions.delivery import Decision, RetryPolicy, judge_attempt, push_headers
from shared.subscriptions.model import Subscription
from shared.subscriptions.ports import DestinationClient, TokenSource, WebhookClient, WebhookResponse
from shared.subscriptions.signed_event import signed_content
from shared.subscriptions.targets import AuthenticationKind, DestinationKind

log = logging.getLogger(__name__)

# How a caller waits for the send's answer (the outbound worker cuts slow ones under its guard).
AwaitAnswer = Callable[[Awaitable[WebhookResponse]], Awaitable[WebhookResponse]]
REDACTED = "[redacted]"


@dataclass(frozen=True)
class Pushed:
    response: WebhookResponse
    decision: Decision
    at: datetime  # when it was signed and sent
    first_attempt_at: datetime  # the delivery's first attempt: this one, unless it is a retry


class Pusher:
    def __init__(
        self,
        *,
        client: WebhookClient,
        clock: Clock,
        policy: RetryPolicy,
        origin: str,
        timeout_seconds: float,
        destinations: Mapping[DestinationKind, DestinationClient] | None = None,
        tokens: TokenSource | None = None,
    ) -> None:
        self._client = client
        self._clock = clock
        self._policy = policy
        self._origin = origin
        self._timeout = timeout_seconds
        self._destinations = dict(destinations or {})
        self._tokens = tokens

    async def push(
        self,
        subscription: Subscription,
        message_id: str,
        body: bytes,
        *,
        attempt: int,
        first_attempt_at: datetime | None,
        at: datetime | None = None,
        await_answer: AwaitAnswer | None = None,
        refusal_is_final: bool = False,
    ) -> Pushed:
        """``at``: the moment the push is signed for (now, unless the caller began the attempt earlier).
        ``refusal_is_final``: an address the connection guard refused dead-letters at once instead of
        being retried like an endpoint that did not answer."""
        now = at or self._clock.now()
        headers = push_headers(
            message_id, self._signed(subscription, body), subscription.secrets.signing(now), self._origin, now
        )
        answer = self._send(subscription, message_id, body, headers)
        response = await (await_answer(answer) if await_answer is not None else answer)
        first = first_attempt_at or now
        decision = judge_attempt(
            status=response.status,
            headers=response.headers,
            attempt=attempt,
            first_attempt_at=first,
            now=self._clock.now(),
            policy=self._policy,
            refused=refusal_is_final and response.refused is not None,
        )
        return Pushed(response, decision, now, first)

    @staticmethod
    def _signed(subscription: Subscription, body: bytes) -> bytes:
        """What the signature covers: the body sent, except to an Event Grid topic, which serializes the
        event again for its receivers: there the event's canonical form (shared/subscriptions/signed_event.py)."""
        destination = subscription.destination
        if destination is not None and destination.kind is DestinationKind.EVENT_GRID_TOPIC:
            try:
                return signed_content(body)
            except (ValueError, TypeError):
                return body  # not an event Event Grid takes either: the publish says why
        return body

    async def options(self, subscription: Subscription, headers: Mapping[str, str]) -> WebhookResponse | None:
        """The CloudEvents abuse-protection handshake (HTTP OPTIONS), with what the gateway asks for; None
        for a broker destination, which has no such handshake (its validation event carries a code instead)."""
        if subscription.destination is not None:
            return None
        extra, secrets, failed = await self._authentication(subscription)
        if failed is not None:
            return failed
        response = await self._client.options(subscription.endpoint, {**headers, **extra}, self._timeout)
        return _redacted(response, secrets)

    async def _send(
        self, subscription: Subscription, message_id: str, body: bytes, headers: Mapping[str, str]
    ) -> WebhookResponse:
        destination = subscription.destination
        if destination is not None:
            publisher = self._destinations.get(destination.kind)
            if publisher is None:
                return _unsent(f"this Herald is not set up to publish to {destination.kind.value} destinations")
            try:
                return await publisher.publish(destination, message_id, body, headers, self._timeout)
            except Exception as error:  # a broker client's own failure: judged as no answer, never a crashed worker
                log.exception("publishing to a destination failed", extra={"subscription": subscription.id})
                return _unsent(f"{type(error).__name__}: {str(error)[:200]}")
        extra, secrets, failed = await self._authentication(subscription)
        if failed is not None:
            return failed
        response = await self._client.post(subscription.endpoint, body, {**headers, **extra}, self._timeout)
        return _redacted(response, secrets)

    async def _authentication(
        self, subscription: Subscription
    ) -> tuple[dict[str, str], list[str], WebhookResponse | None]:
        """The headers the endpoint's gateway asks for, the secrets among them, or why there are none
        (no token could be had: the push is not sent, and is retried like an endpoint that did not answer)."""
        authentication = subscription.authentication
        if authentication is None:
            return {}, [], None
        if authentication.kind is AuthenticationKind.HEADERS:
            return dict(authentication.headers), authentication.secret_values, None
        if self._tokens is None:
            return {}, [], _unsent("this Herald has no token source for entraToken authentication")
        try:
            token = await self._tokens.token(authentication.scope)
        except Exception as error:  # any failure of the identity platform: retried, never a crashed worker
            log.warning(
                "no token for a webhook's audience",
                extra={"subscription": subscription.id, "audience": authentication.audience, "error": str(error)[:300]},
            )
            return {}, [], _unsent(f"no token for audience {authentication.audience}: {str(error)[:200]}")
        return {"authorization": f"Bearer {token}"}, [token], None


def _unsent(error: str) -> WebhookResponse:
    return WebhookResponse(status=None, headers={}, latency_ms=0, excerpt="", error=error)


def _redacted(response: WebhookResponse, secrets: list[str]) -> WebhookResponse:
    """An endpoint that echoes the request (a debugging echo service, an error page quoting headers)
    must not put a header value or token into the delivery log, which the API shows."""
    excerpt, error = response.excerpt, response.error
    # An echo inside a JSON document escapes '"' and '\\' (both allowed in header values): that form too.
    forms = {form for secret in secrets for form in (secret, json.dumps(secret)[1:-1])}
    for secret in sorted(forms, key=len, reverse=True):
        if secret and secret in excerpt:
            excerpt = excerpt.replace(secret, REDACTED)
        if secret and error and secret in error:
            error = error.replace(secret, REDACTED)
        # The excerpt is cut at a byte limit, possibly inside an echoed value: its start is a secret too.
        start = excerpt.find(secret[:4], max(0, len(excerpt) - len(secret) + 1)) if len(secret) > 4 else -1
        while start != -1:
            if secret.startswith(excerpt[start:]):
                excerpt = excerpt[:start] + REDACTED
                break
            start = excerpt.find(secret[:4], start + 1)
    if excerpt == response.excerpt and error == response.error:
        return response
    return replace(response, excerpt=excerpt, error=error)
