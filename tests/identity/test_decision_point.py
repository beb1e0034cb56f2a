"""The external policy decision point adapter at the HTTP level: batched JSON, a bearer token,
and no guessing when the PDP cannot answer."""

from __future__ import annotations

import pytest
from aiohttp import web

from shared.adapters.http_decision_point import DecisionPointUnavailable, HttpDecisionPoint
from shared.identity.authorization import AccessRequest, Action


class StaticTokens:
    async def token(self) -> str:
        return "pdp-token"


@pytest.fixture
async def pdp():
    state = {"calls": [], "status": 200, "answer": None}
    app = web.Application()

    async def decide(request: web.Request) -> web.Response:
        body = await request.json()
        state["calls"].append((request.headers.get("Authorization"), body))
        if state["status"] != 200:
            return web.Response(status=state["status"])
        if state["answer"] is not None:
            return web.json_response(state["answer"])
        # Grants reads of events about person:01017012343 to its holder only.
        decisions = [r["consumer"] == r["subject"] and r["action"] == "read" for r in body["requests"]]
        return web.json_response({"decisions": decisions})

    app.router.add_post("/decide", decide)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/decide", state
    await runner.cleanup()


def request(consumer: str, subject: str, action: Action = Action.READ) -> AccessRequest:
    return AccessRequest(consumer, "urn:altinn:resource:x", subject, "no.case.opened", action)


async def test_decisions_are_batched_with_a_bearer_token(pdp):
    url, state = pdp
    point = HttpDecisionPoint(url, StaticTokens())
    requests = [request("person:01017012343", "person:01017012343")] + [
        request("org:991825827", f"org:{n}") for n in range(150)
    ]
    answers = await point.decide(requests)
    assert answers[0] is True and not any(answers[1:])
    assert len(state["calls"]) == 2  # 151 requests in batches of 100
    assert all(auth == "Bearer pdp-token" for auth, _ in state["calls"])
    assert state["calls"][0][1]["requests"][0] == {
        "consumer": "person:01017012343",
        "resource": "urn:altinn:resource:x",
        "subject": "person:01017012343",
        "type": "no.case.opened",
        "action": "read",
    }


@pytest.mark.parametrize("failure", [{"status": 503}, {"answer": {"decisions": [True]}}, {"answer": {"nope": 1}}])
async def test_an_unanswered_or_malformed_decision_is_an_error_not_a_deny(pdp, failure):
    url, state = pdp
    state.update(failure)
    with pytest.raises(DecisionPointUnavailable):
        await HttpDecisionPoint(url, StaticTokens()).decide([request("a", "b"), request("c", "d")])
