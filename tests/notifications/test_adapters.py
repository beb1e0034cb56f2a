"""Adapters at the HTTP level against local fakes (pytest-httpserver): ACS email/SMS, the gateway, the registry."""

from __future__ import annotations

import base64
import json
import ssl
from datetime import timedelta

import requests
import trustme
from pytest_httpserver import HTTPServer
from werkzeug import Response

from shared.adapters.acs_email import AcsEmailSender
from shared.adapters.acs_sms import AcsSmsSender
from shared.adapters.contact_registry_http import HttpContactRegistry
from shared.adapters.entra_tokens import MsalTokenProvider
from shared.adapters.link_sms import LinkSmsSender, parse_reports
from shared.notifications.model import ContentType, Status
from shared.notifications.ports import EmailMessage, SmsMessage

KEY = base64.b64encode(b"k" * 32).decode()
EMAIL = EmailMessage(
    "11111111-1111-4111-8111-111111111111", "noreply@x.example", "kari@example.com", "S", "B", ContentType.PLAIN
)
SMS = SmsMessage("22222222-2222-4222-8222-222222222222", "Herald", "+4799999901", "hei")


def acs(server: HTTPServer) -> str:
    return f"endpoint=http://127.0.0.1:{server.port}/;accesskey={KEY}"


async def test_acs_email_send_is_signed_and_carries_the_operation_id(httpserver: HTTPServer):
    httpserver.expect_request("/emails:send", method="POST").respond_with_json(
        {"id": EMAIL.notification_id, "status": "Running"}, status=202
    )
    sender = AcsEmailSender.from_connection_string(acs(httpserver))
    try:
        result = await sender.send(EMAIL)
    finally:
        await sender.close()
    assert result.outcome == "accepted" and result.reference == EMAIL.notification_id
    request, _ = httpserver.log[0]
    assert request.headers["Operation-Id"] == EMAIL.notification_id
    assert request.headers["Authorization"].startswith("HMAC-SHA256")
    body = json.loads(request.get_data())
    assert body["recipients"]["to"] == [{"address": "kari@example.com"}]
    assert body["content"] == {"subject": "S", "plainText": "B"}


async def test_acs_email_429_503_and_invalid_address(httpserver: HTTPServer):
    sender = AcsEmailSender.from_connection_string(acs(httpserver))
    try:
        httpserver.expect_oneshot_request("/emails:send").respond_with_json(
            {"error": {"code": "TooManyRequests", "message": "slow down"}}, status=429, headers={"Retry-After": "17"}
        )
        throttled = await sender.send(EMAIL)
        httpserver.expect_oneshot_request("/emails:send").respond_with_data("busy", status=503)
        transient = await sender.send(EMAIL)
        httpserver.expect_oneshot_request("/emails:send").respond_with_json(
            {"error": {"code": "InvalidRecipientAddress", "message": "bad address"}}, status=400
        )
        invalid = await sender.send(EMAIL)
    finally:
        await sender.close()
    assert throttled.outcome == "throttled" and throttled.retry_after == timedelta(seconds=17)
    assert transient.outcome == "transient"
    assert invalid.outcome == "failed" and invalid.status is Status.FAILED_INVALID_EMAIL_FORMAT
    assert len(httpserver.log) == 3  # no SDK retries: Herald retries with delayed messages


async def test_acs_sms_send(httpserver: HTTPServer):
    httpserver.expect_request("/sms", method="POST").respond_with_json(
        {"value": [{"to": SMS.to, "messageId": "Outgoing_1", "httpStatusCode": 202, "successful": True}]}, status=202
    )
    sender = AcsSmsSender.from_connection_string(acs(httpserver))
    try:
        result = await sender.send(SMS)
    finally:
        await sender.close()
    assert result.outcome == "accepted" and result.reference == "Outgoing_1"
    body = json.loads(httpserver.log[0][0].get_data())
    assert (
        body["smsSendOptions"]["enableDeliveryReport"] is True and body["smsSendOptions"]["tag"] == SMS.notification_id
    )


async def test_link_gateway_json(httpserver: HTTPServer):
    sender = LinkSmsSender(httpserver.url_for("/send"), "user", "pw")
    try:
        httpserver.expect_oneshot_request("/send").respond_with_json({"messageId": "gw-1"})
        ok = await sender.send(SMS)
        httpserver.expect_oneshot_request("/send").respond_with_json({"description": "Invalid RCV number"}, status=400)
        invalid = await sender.send(SMS)
        httpserver.expect_oneshot_request("/send").respond_with_data("", status=504)
        transient = await sender.send(SMS)
    finally:
        await sender.close()
    assert ok.reference == "gw-1"
    assert invalid.status is Status.FAILED_INVALID_RECIPIENT
    assert transient.outcome == "transient"
    request = httpserver.log[0][0]
    assert request.authorization.username == "user"
    assert json.loads(request.get_data()) == {
        "source": "Herald",
        "destination": SMS.to,
        "userData": "hei",
        "refId": SMS.notification_id,
    }


async def test_link_gateway_xml(httpserver: HTTPServer):
    answer = (
        "<SESSION><LOGON>OK</LOGON><MSGLST><MSG><ID>1</ID><REF>ref-9</REF><STATUS>OK</STATUS></MSG></MSGLST></SESSION>"
    )
    httpserver.expect_request("/xml").respond_with_data(answer, content_type="application/xml")
    sender = LinkSmsSender(httpserver.url_for("/xml"), "user", "pw", format="xml")
    try:
        result = await sender.send(SMS)
    finally:
        await sender.close()
    assert result.reference == "ref-9"
    assert b"<RCV>4799999901</RCV>" in httpserver.log[0][0].get_data()


def test_gateway_reports_parse_json_and_xml():
    xml = b"<MSGLST><MSG><ID>1</ID><REF>r1</REF><RCV>4799</RCV><STATE>DELIVRD</STATE></MSG><MSG><REF>r2</REF><STATE>UNDELIV</STATE></MSG></MSGLST>"
    assert [(r.reference, r.state) for r in parse_reports(xml, "application/xml")] == [
        ("r1", "DELIVRD"),
        ("r2", "UNDELIV"),
    ]
    assert parse_reports(b'{"reference": "r3", "state": "EXPIRED"}', "application/json")[0].state == "EXPIRED"


async def test_http_registry_with_an_msal_client_credentials_token(tmp_path):
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    server = HTTPServer(host="localhost", port=0, ssl_context=context)
    server.start()
    try:
        base = f"https://localhost:{server.port}"
        server.expect_request("/tenant/v2.0/.well-known/openid-configuration").respond_with_json(
            {
                "token_endpoint": f"{base}/tenant/token",
                "authorization_endpoint": f"{base}/tenant/authorize",
                "issuer": f"{base}/tenant/v2.0",
            }
        )
        server.expect_request("/tenant/token", method="POST").respond_with_json(
            {"access_token": "registry-token", "token_type": "Bearer", "expires_in": 3600}
        )

        def persons(request):
            assert request.headers["Authorization"] == "Bearer registry-token"
            asked = request.get_json()["nationalIdentityNumbers"]
            found = [
                {"nationalIdentityNumber": n, "emailAddress": f"{n}@example.com", "reserved": n.endswith("9")}
                for n in asked
            ]
            return Response(json.dumps({"persons": found}), content_type="application/json")

        server.expect_request("/registry/persons/lookup", method="POST").respond_with_handler(persons)
        ca_path = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_path))
        session = requests.Session()
        session.verify, session.trust_env = str(ca_path), False
        tokens = MsalTokenProvider(
            authority=f"{base}/tenant",
            client_id="herald",
            client_secret="secret",
            scope="api://registry/.default",
            http_client=session,
            validate_authority=False,
        )

        registry = HttpContactRegistry(
            f"{base}/registry", tokens, ssl_context=ssl.create_default_context(cafile=str(ca_path))
        )
        found = await registry.persons(["01017012345", "01017012349"])
        assert found["01017012345"].email_address == "01017012345@example.com"
        assert found["01017012349"].reserved is True
        token_call = next(r for r, _ in server.log if r.path == "/tenant/token")
        assert b"grant_type=client_credentials" in token_call.get_data()
    finally:
        server.stop()


async def test_local_sink_retries_a_report_its_subscriber_did_not_take():
    """Like Event Grid, the sink posts a report again when the function answered an error (here a
    report that came before the send was recorded), instead of dropping it."""
    from aiohttp import web

    from shared.adapters.local_sink import LocalSink, http_poster
    from shared.notifications.model import ContentType
    from shared.notifications.ports import EmailMessage

    answers = [500, 500, 200]
    received: list[str] = []

    async def eventgrid(request: web.Request) -> web.Response:
        if request.headers.get("x-functions-key") != "system-key":  # the webhook's eventgrid_extension key
            return web.Response(status=401)
        received.append(request.query["functionName"])
        return web.Response(status=answers[len(received) - 1])

    app = web.Application()
    app.router.add_post("/runtime/webhooks/eventgrid", eventgrid)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        sink = LocalSink(http_poster(f"http://127.0.0.1:{port}/runtime/webhooks/eventgrid", "system-key"), delay=0.01)
        message = EmailMessage("n1", "noreply@herald.local", "kari@example.com", "Hi", "Hello", ContentType.PLAIN)
        result = await sink.email.send(message)
        assert result.outcome == "accepted"
        await sink.drain()
        assert received == ["email_delivery_report"] * 3
    finally:
        await runner.cleanup()
