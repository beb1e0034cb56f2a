"""One signed push: sign the body, POST it, and judge the answer. The outbound worker pushes events
with it and the validation handshake pushes the validation event."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from shared.clock import Clock
from shared.subscriptions.delivery import Decision, RetryPolicy, judge_attempt, push_headers
from shared.subscriptions.model import Secrets
from shared.subscriptions.ports import WebhookClient, WebhookResponse

# How a caller waits for the POST's answer (the outbound worker cuts slow ones under its guard).
AwaitAnswer = Callable[[Awaitable[WebhookResponse]], Awaitable[WebhookResponse]]


@dataclass(frozen=True)
class Pushed:
    response: WebhookResponse
    decision: Decision
    at: datetime  # when it was signed and sent
    first_attempt_at: datetime  # the delivery's first attempt: this one, unless it is a retry


class Pusher:
    def __init__(
        self, *, client: WebhookClient, clock: Clock, policy: RetryPolicy, origin: str, timeout_seconds: float
    ) -> None:
        self._client = client
        self._clock = clock
        self._policy = policy
        self._origin = origin
        self._timeout = timeout_seconds

    async def push(
        self,
        endpoint: str,
        message_id: str,
        body: bytes,
        secrets: Secrets,
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
        headers = push_headers(message_id, body, secrets.signing(now), self._origin, now)
        answer = self._client.post(endpoint, body, headers, self._timeout)
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
