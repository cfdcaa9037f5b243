"""`POST /notifications` answered straight from ASGI: graph-webhook's hot path.

Through FastAPI, each POST went through Starlette's middleware, FastAPI's routing and dependency
solving and the OpenTelemetry ASGI middleware, which together cost more CPU than validating the
notifications (docs/benchmarks.md, "Webhook intake (session 2)"). `WebhookApp` hands these POSTs
to `NotificationsEndpoint` before any of that; everything else still goes through FastAPI, and the
FastAPI route stays for the OpenAPI document.

What the request keeps: the same answers (`notifications.respond`, shared with the FastAPI route and
`/lifecycle`), a SERVER span with the attributes the OpenTelemetry instrumentation gives it (the
incoming trace context continued, `http.route` set, producer spans its children), and the same
`http.server.*` metric series: the instruments are looked up on the FastAPI instrumentation's meter,
so `/notifications` stays in `http_server_duration_milliseconds` with the same labels.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.metrics import Histogram, UpDownCounter
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.requests import ClientDisconnect, Request

from graph_webhook.notifications import respond
from graph_webhook.payloads import read_body

if TYPE_CHECKING:
    from graph_webhook.app import WebhookState

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("graph_webhook.endpoint")

PATH = "/notifications"
SPAN_NAME = f"POST {PATH}"
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# The OpenTelemetry FastAPI instrumentation's meter (old HTTP semantic conventions, its default).
INSTRUMENTATION_SCOPE = "opentelemetry.instrumentation.fastapi"
SCHEMA_URL = "https://opentelemetry.io/schemas/1.11.0"
_FAILED = (
    500,
    b"Internal Server Error",
    [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"21")],
)


@dataclass(frozen=True, slots=True)
class _HttpMetrics:
    duration: Histogram
    request_size: Histogram
    active: UpDownCounter


@functools.cache
def _http_metrics() -> _HttpMetrics:
    """The FastAPI instrumentation's instruments (same names, units, descriptions: the SDK returns the same ones).

    Looked up at the first request, once the meter provider is installed.
    """
    from opentelemetry.instrumentation.fastapi.version import __version__

    meter = metrics.get_meter(INSTRUMENTATION_SCOPE, __version__, schema_url=SCHEMA_URL)
    return _HttpMetrics(
        duration=meter.create_histogram(
            "http.server.duration", unit="ms", description="Measures the duration of inbound HTTP requests."
        ),
        request_size=meter.create_histogram(
            "http.server.request.size",
            unit="By",
            description="Measures the size of HTTP request messages (compressed).",
        ),
        active=meter.create_up_down_counter(
            "http.server.active_requests", unit="{request}", description="Number of active HTTP server requests."
        ),
    )


def handles(scope: Scope) -> bool:
    """Whether this ASGI request is one `NotificationsEndpoint` answers."""
    return scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "POST"


class NotificationsEndpoint:
    """Answers `POST /notifications` for the app whose `WebhookState` `state()` returns."""

    def __init__(self, state: Callable[[], WebhookState]) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        scheme = scope.get("scheme", "http")
        server_host, server_port = scope.get("server") or ("", 0)
        host = headers.get("host") or f"{server_host}:{server_port}"
        common: dict[str, Any] = {
            "http.method": "POST",
            "http.host": f"{server_host}:{server_port}",
            "http.scheme": scheme,
            "http.flavor": scope.get("http_version", "1.1"),
            "http.server_name": host,
        }
        attributes = {
            **common,
            "net.host.port": server_port,
            "http.target": PATH,
            "http.url": f"{scheme}://{host}{PATH}",
            "http.route": PATH,
        }
        if "user-agent" in headers:
            attributes["http.user_agent"] = headers["user-agent"]
        client = scope.get("client")
        if client:
            attributes["net.peer.ip"], attributes["net.peer.port"] = client[0], client[1]
        instruments = _http_metrics()
        instruments.active.add(1, common)
        parent = propagate.extract(headers)
        span = _tracer.start_span(SPAN_NAME, context=parent, kind=SpanKind.SERVER, attributes=attributes)
        attached = otel_context.attach(trace.set_span_in_context(span, parent))
        status = 0
        try:
            request = Request(scope, receive)
            query = scope.get("query_string") or b""
            token = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True)).get("validationToken")
            try:
                status, body, response_headers = await respond(
                    self.state(), token, lambda limit: read_body(request, limit)
                )
            except ClientDisconnect:
                log.info("client disconnected before sending its notifications")
                return
            except Exception as exc:  # a bug: answer 500 as Starlette's ServerErrorMiddleware would
                log.exception("POST /notifications failed")
                span.record_exception(exc)
                status, body, response_headers = _FAILED
            await send({"type": "http.response.start", "status": status, "headers": response_headers})
            await send({"type": "http.response.body", "body": body})
        finally:
            otel_context.detach(attached)
            timed = {**common, "net.host.port": server_port, "http.target": PATH}
            if status:
                span.set_attribute("http.status_code", status)
                timed["http.status_code"] = status
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            span.end()
            instruments.duration.record(max(round((time.perf_counter() - start) * 1000), 0), timed)
            declared = headers.get("content-length")
            if declared is not None and declared.isdigit():
                instruments.request_size.record(int(declared), timed)
            instruments.active.add(-1, common)
