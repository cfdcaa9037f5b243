"""A loopback webhook receiver for the simulator's tests."""

from __future__ import annotations

import json
import ssl
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx


class Webhook:
    """A loopback receiver: answers Graph's validation handshake and records notifications."""

    def __init__(self, tls: tuple[str, str] | None = None) -> None:
        self.received: list[dict[str, Any]] = []
        self.validations: list[str] = []
        self.statuses: list[int] = []  # consumed one per notification POST; then 202
        self.delays: list[float] = []  # consumed one per notification POST
        self.echo_validation = True
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if "validationToken" in query:
                    token = query["validationToken"][0]
                    hook.validations.append(token)
                    body = token.encode() if hook.echo_validation else b"nope"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                with hook.lock:
                    status = hook.statuses.pop(0) if hook.statuses else 202
                    delay = hook.delays.pop(0) if hook.delays else 0.0
                if delay:
                    time.sleep(delay)
                if 200 <= status < 300:
                    with hook.lock:
                        hook.received.append({"path": self.path, "body": json.loads(raw)})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}/notify"
        self.lifecycle_url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}/lifecycle"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def notifications(self, path: str = "/notify") -> list[dict[str, Any]]:
        with self.lock:
            return [n for r in self.received if r["path"] == path for n in r["body"]["value"]]

    def posts(self, path: str = "/notify") -> list[dict[str, Any]]:
        with self.lock:
            return [r["body"] for r in self.received if r["path"] == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def expiry(minutes: float = 60) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def subscribe(
    client: httpx.Client,
    user: dict[str, Any],
    hook: Webhook,
    resource: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> httpx.Response:
    body = {
        "changeType": "created,updated,deleted",
        "notificationUrl": hook.url,
        "lifecycleNotificationUrl": hook.lifecycle_url,
        "resource": resource or f"/users/{user['id']}/events",
        "expirationDateTime": expiry(),
        "clientState": "s3cret",
        **extra,
    }
    return client.post("/subscriptions", json=body, headers=headers)
