"""A webhook receiver on loopback for smoke runs against devhost, which pushes over http to loopback."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Push:
    """One POST as it arrived: the raw body and the headers a Standard Webhooks signature covers."""

    headers: dict[str, str]
    body: bytes

    def event_id(self) -> Any:
        try:
            document = json.loads(self.body)
        except ValueError:
            return None
        return document.get("id") if isinstance(document, dict) else None


class LoopbackReceiver:
    """Answers every POST with 200 (so the validation event activates the subscription) and keeps it."""

    def __init__(self) -> None:
        self._pushes: list[Push] = []
        self._lock = threading.Lock()
        record = self._record

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                record(Push({name.lower(): value for name, value in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the smoke test prints its own lines."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="smoke-receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/smoke"

    def _record(self, push: Push) -> None:
        with self._lock:
            self._pushes.append(push)

    def push_of(self, event_id: str) -> Push | None:
        with self._lock:
            return next((push for push in self._pushes if push.event_id() == event_id), None)

    def __enter__(self) -> LoopbackReceiver:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
