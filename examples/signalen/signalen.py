"""A stand-in for a municipal issue-reporting backend (like Signalen) that lets Herald notify residents.

The backend only publishes events: ``signal.created`` when a resident reports an issue and
``signal.status.changed`` when the report moves on. One notification subscription, set up once,
turns every status change into an email or SMS to the resident (the event's subject); the backend
writes no notification code. Standard library only.

    python examples/signalen/signalen.py subscribe
    python examples/signalen/signalen.py create --resident person:01019010046 --title "Broken street light"
    python examples/signalen/signalen.py status SIG-1 in_progress --text "A crew is on its way."
    python examples/signalen/signalen.py follow       # what happened to each notification
    python examples/signalen/signalen.py demo         # all of the above for three residents

Settings: ``HERALD_URL`` (default http://127.0.0.1:7071) and ``HERALD_TOKEN`` (a token with the
scopes events.publish events.read events.subscribe notifications.order), or --url / --token.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

RESOURCE = os.environ.get("SIGNALEN_RESOURCE", "urn:no:kommune:signalen")
SOURCE = "urn:no:kommune:signalen:backend"
STATES = {
    # Signalen's states, by their English names: reported (m), in_progress (b), resolved (o), reopened (reopened)
    "reported": "Reported",
    "in_progress": "In progress",
    "resolved": "Resolved",
    "reopened": "Reopened",
}
STATE_FILE = Path(os.environ.get("SIGNALEN_STATE", ".local/signalen.json"))

# The one subscription: every status change of a report notifies its resident.
SUBSCRIPTION = {
    "resourceFilter": RESOURCE,
    "typeFilter": "signal.status.changed",
    "notification": {
        "notificationChannel": "EmailPreferred",
        "emailTemplate": {
            "subject": "Your report $data.signalId$ is now: $data.statusText$",
            "body": (
                "<p>Dear $recipientName$,</p>"
                "<p>Your report <b>$data.title$</b> ($data.location$) has a new status: <b>$data.statusText$</b>.</p>"
                "<p>$data.text$</p><p>Reference $data.signalId$. You are receiving this because you reported it.</p>"
            ),
            "contentType": "Html",
        },
        "smsTemplate": {"body": "Report $data.signalId$ ($data.title$): $data.statusText$. $data.text$"},
        "sendingTimePolicy": "Anytime",
    },
}


class Herald:
    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        return self.exchange(method, f"{self.url}{path}", body, content_type)[0]

    def exchange(
        self, method: str, url: str, body: Any = None, content_type: str = "application/json"
    ) -> tuple[Any, str | None]:
        """The JSON answer and the next link (``Link: <…>; rel="next"``), if any."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read().decode()
                link = response.headers.get("Link") or ""
        except urllib.error.HTTPError as error:
            raise SystemExit(f"{method} {url}: {error.code} {error.read().decode()}") from None
        following = link[1 : link.index(">")] if link.startswith("<") and 'rel="next"' in link else None
        return (json.loads(text) if text else None), following

    def publish(self, event: dict[str, Any]) -> None:
        self.call("POST", "/api/v1/events", event, "application/cloudevents+json")


# ------------------------------------------------------------------------------ the backend's reports


def load_state() -> dict[str, Any]:
    if STATE_FILE.exists():
        state: dict[str, Any] = json.loads(STATE_FILE.read_text())
        return state
    return {"next": 1, "signals": {}}


def save_state(state: dict[str, Any]) -> None:
    STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
    STATE_FILE.write_text(json.dumps(state, indent=2))


def event(kind: str, signal: dict[str, Any], number: int, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"{signal['id']}-{number}",
        "source": SOURCE,
        "type": kind,
        "resource": RESOURCE,
        "subject": signal["resident"],
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "datacontenttype": "application/json",
        "data": {
            "signalId": signal["id"],
            "title": signal["title"],
            "location": signal["location"],
            "status": signal["status"],
            "statusText": STATES[signal["status"]],
            **extra,
        },
    }


def create(herald: Herald, resident: str, title: str, location: str) -> dict[str, Any]:
    state = load_state()
    signal = {
        "id": f"SIG-{state['next']}",
        "resident": resident,
        "title": title,
        "location": location,
        "status": "reported",
        "events": 1,
    }
    state["next"] += 1
    herald.publish(event("signal.created", signal, 1, {"text": "Thank you for your report."}))
    state["signals"][signal["id"]] = signal
    save_state(state)
    return signal


def change_status(herald: Herald, signal_id: str, status: str, text: str) -> dict[str, Any]:
    if status not in STATES:
        raise SystemExit(f"status must be one of {', '.join(STATES)}")
    state = load_state()
    signal: dict[str, Any] | None = state["signals"].get(signal_id)
    if signal is None:
        raise SystemExit(f"no report {signal_id} (create it first)")
    previous, signal["status"] = signal["status"], status
    signal["events"] += 1
    herald.publish(event("signal.status.changed", signal, signal["events"], {"previousStatus": previous, "text": text}))
    save_state(state)
    return signal


def subscribe(herald: Herald) -> dict[str, Any]:
    created: dict[str, Any] = herald.call("POST", "/api/v1/subscriptions", SUBSCRIPTION)
    return created


def notification_events(herald: Herald) -> list[dict[str, Any]]:
    """The herald.notification.* status events of our orders: they land in our own resource."""
    found: list[dict[str, Any]] = []
    query = urllib.parse.urlencode({"resource": RESOURCE, "source": "urn:herald:notifications", "size": 1000})
    url: str | None = f"{herald.url}/api/v1/events?{query}"
    while url:
        page, url = herald.exchange("GET", url)
        if not page:
            break  # an empty page: read to the end (its next link is where to poll from later)
        found.extend(page)
    return found


def follow(herald: Herald) -> dict[str, str]:
    """The latest status of every notification, by report and address."""
    latest: dict[str, str] = {}
    for item in notification_events(herald):
        data = item["data"]
        recipient = data["recipient"].get("address") or data["recipient"].get("nationalIdentityNumber", "?")
        latest[f"{data['sendersReference']} {data['channel']} {recipient}"] = data["status"]
    return latest


def outbox(herald: Herald) -> list[dict[str, Any]]:
    """What devhost's local sink "sent" (local mode only)."""
    messages: list[dict[str, Any]] = herald.call("GET", "/api/v1/dev/outbox")["messages"]
    return messages


def demo(herald: Herald, wait: float) -> int:
    subscription = subscribe(herald)
    print(f"subscription {subscription['id']}: {subscription['status']}")
    residents = [
        ("person:01019010046", "Broken street light", "Storgata 1"),
        ("person:15028510281", "Overflowing bin", "Parkveien 12"),
        ("person:22037510045", "Pothole", "Kirkegata 7"),
    ]
    signals = [create(herald, *resident) for resident in residents]
    changed = [change_status(herald, signal["id"], "in_progress", "A crew has been assigned.") for signal in signals]
    changed.append(change_status(herald, signals[0]["id"], "resolved", "The light has been replaced."))
    # The notification orders' sendersReference is the id of the event that made them.
    expected = {f"{signal['id']}-{signal['events']}" for signal in changed}
    print(f"published {len(signals)} reports and {len(expected)} status changes")
    deadline = time.monotonic() + wait
    latest: dict[str, str] = {}
    while time.monotonic() < deadline:
        latest = follow(herald)
        final = [s for s in latest.values() if s == "Delivered" or s.startswith("Failed")]
        if {key.split(" ")[0] for key in latest} >= expected and len(final) == len(latest):
            break
        time.sleep(0.5)
    for key, status in sorted(latest.items()):
        print(f"  {key}: {status}")
    for message in outbox(herald):
        if any(message["body"].find(s["id"]) >= 0 for s in signals):
            print(f"  outbox {message['channel']} to {message['to']}: {message['subject'] or message['body']}")
    return 0 if {key.split(" ")[0] for key in latest} >= expected else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("HERALD_URL", "http://127.0.0.1:7071"))
    parser.add_argument("--token", default=os.environ.get("HERALD_TOKEN"))
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("subscribe", help="create the notification subscription (idempotent)")
    new = commands.add_parser("create", help="a resident reports an issue: publishes signal.created")
    new.add_argument("--resident", required=True, help="person:<11 digits> or org:<9 digits>")
    new.add_argument("--title", required=True)
    new.add_argument("--location", default="(no address)")
    move = commands.add_parser("status", help="a report changes status: publishes signal.status.changed")
    move.add_argument("signal_id")
    move.add_argument("status", choices=sorted(STATES))
    move.add_argument("--text", default="")
    commands.add_parser("follow", help="the status of every notification, from the hub")
    commands.add_parser("outbox", help="the messages devhost's local sink captured")
    run = commands.add_parser("demo", help="subscribe, three reports, status changes, then follow")
    run.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the final statuses")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("set HERALD_TOKEN or pass --token")
    herald = Herald(args.url, args.token)
    if args.command == "subscribe":
        print(json.dumps(subscribe(herald), indent=2))
    elif args.command == "create":
        print(json.dumps(create(herald, args.resident, args.title, args.location), indent=2))
    elif args.command == "status":
        print(json.dumps(change_status(herald, args.signal_id, args.status, args.text), indent=2))
    elif args.command == "follow":
        for key, status in sorted(follow(herald).items()):
            print(f"{key}: {status}")
    elif args.command == "outbox":
        print(json.dumps(outbox(herald), indent=2))
    else:
        return demo(herald, args.wait)
    return 0


if __name__ == "__main__":
    sys.exit(main())
