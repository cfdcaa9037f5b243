"""OpenTelemetry set-up: traces (OTLP when configured), metrics as Prometheus text, AMQP context.

Personal data stays out of telemetry: a user appears as `user_hash(email)` (HMAC-SHA256 with the
deployment's `TELEMETRY_USER_SALT`, 12 hex digits), never as an e-mail; span attributes that
carry an e-mail anyway (URLs such as `/representatives/by-email/{email}` or `/users/{upn}`) have it
replaced by `user:<hash>` before any exporter sees it: by a span processor as the span starts, and by
the HTTP instrumentations' request hooks once they have set their attributes.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
import socket
import threading
from collections.abc import Mapping, MutableMapping
from typing import Any
from urllib.parse import unquote

from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, SynchronousMultiSpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

_lock = threading.Lock()
_configured = False
_user_salt: str | None = None

# Every histogram in seconds gets these buckets (the SDK's default ones are meant for milliseconds):
# from a fast hop to the alert threshold of the end-to-end lag (60 s) and well past it.
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 900, 3600)
SALT_ENV = "TELEMETRY_USER_SALT"
# Used when the deployment sets no salt: hashes stay stable, but anyone who knows an address can
# then recompute its hash, so production sets its own secret salt.
DEFAULT_SALT = "outlook-erp-sync"
_EMAIL = re.compile(r"[A-Za-z0-9._+\-']+(?:@|%40)[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")


def user_hash(email: str, salt: str | None = None) -> str:
    """The opaque name of a user in metrics, spans and logs: 12 hex digits of HMAC-SHA256(salt, e-mail).

    The salt: `salt`, else the one given to `setup_telemetry`, else $TELEMETRY_USER_SALT, else a default.
    """
    return _hmac12(email.strip().lower(), salt or _user_salt or os.environ.get(SALT_ENV) or DEFAULT_SALT)


@functools.lru_cache(maxsize=4096)
def _hmac12(email: str, salt: str) -> str:
    # Cached: the same few users are hashed on every message, span and log line.
    return hmac.new(salt.encode(), email.encode(), hashlib.sha256).hexdigest()[:12]


def redact_emails(text: str) -> str:
    """`text` with every e-mail address (plain or URL-encoded) replaced by `user:<hash>`."""
    if "@" not in text and "%40" not in text:
        return text
    return _EMAIL.sub(lambda m: f"user:{user_hash(unquote(m.group()))}", text)


def redact_span(span: Any, *_: Any) -> None:
    """Replace e-mail addresses in a recording span's string attributes (usable as an instrumentation hook)."""
    attributes = getattr(span, "attributes", None)
    if not attributes or not _may_hold_email(attributes) or not span.is_recording():
        return
    for key, value in list(attributes.items()):
        if isinstance(value, str):
            clean = redact_emails(value)
            if clean != value:
                span.set_attribute(key, clean)


def _may_hold_email(attributes: Any) -> bool:
    """False only when no attribute can hold an address: checked on the mapping's text, in one pass.

    Every span goes through `redact_span`, most without any address; walking the SDK's attribute
    mapping value by value cost a fifth of a span's creation. The text of a dict (or of the SDK's
    mappings, which show as one) keeps every `@` and `%40` of its string values; a mapping shown
    any other way is walked value by value.
    """
    text = repr(attributes)
    if text.startswith("mappingproxy("):
        text = text[13:]
    if not text.startswith("{"):
        return True
    return "@" in text or "%40" in text


async def redact_span_async(span: Any, *_: Any) -> None:
    redact_span(span)


class RedactingSpanProcessor(SpanProcessor):
    """Redacts the attributes a span starts with; the HTTP instrumentations' hooks redact those set later."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        redact_span(span)

    def on_end(self, span: ReadableSpan) -> None:
        return None


class SpanProcessors(SynchronousMultiSpanProcessor):
    """A provider's span processors; `exporting` once one is added beyond the redaction (an OTLP
    exporter, a test's in-memory one, the bench's)."""

    exporting = False

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        super().add_span_processor(span_processor)
        if not isinstance(span_processor, RedactingSpanProcessor):
            self.exporting = True


class RecordWhenExported(Sampler):
    """Spans are recorded only while something exports them (ADR 0053).

    Unexported, a span is non-recording: its trace and span ids are still made and propagated (log
    lines, journal lines and downstream services keep the trace id), but no attributes, events or
    timings are gathered for nobody. Not parent-based: a service that exports records its spans even
    under a caller that does not, so the trace holds every exporting service's part."""

    def __init__(self, processors: SpanProcessors) -> None:
        self.processors = processors

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Any = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        state = parent.trace_state if parent.is_valid else None
        if self.processors.exporting:
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, state)
        return SamplingResult(Decision.DROP, None, state)

    def get_description(self) -> str:
        return "RecordWhenExported"


def spans_recorded(provider: Any = None) -> bool:
    """Whether spans made now are recorded: by a provider of `setup_telemetry`, only while something
    exports them (ADR 0053); by any other SDK provider (a test's), always; by the API's no-op one, never."""
    provider = provider or trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        return False
    processors = getattr(provider, "_active_span_processor", None)
    return not isinstance(processors, SpanProcessors) or processors.exporting


def setup_telemetry(
    service_name: str, otlp_endpoint: str | None = None, *, user_salt: str | None = None
) -> TracerProvider:
    """Install tracer and meter providers once per process and return the tracer provider.

    Several services may share one process in tests: the first call wins and later calls reuse
    its providers, so spans of every service land in one exporter. `user_salt` keys `user_hash`.
    """
    global _configured, _user_salt
    with _lock:
        if user_salt:
            _user_salt = user_salt
        provider = trace.get_tracer_provider()
        if _configured and isinstance(provider, TracerProvider):
            return provider
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        # One instance per process: a replica's sync-core workers export their own series (ADR 0055).
        instance = f"{socket.gethostname()}:{os.getpid()}"
        resource = Resource.create({"service.name": service_name, "service.instance.id": instance})
        processors = SpanProcessors()
        tracer_provider = TracerProvider(
            resource=resource, sampler=RecordWhenExported(processors), active_span_processor=processors
        )
        # First, so that no exporter added later (OTLP here, a test's in-memory one) sees an e-mail.
        tracer_provider.add_span_processor(RedactingSpanProcessor())
        if otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            tracer_provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp_endpoint.rstrip('/')}/v1/traces"))
            )
        trace.set_tracer_provider(tracer_provider)
        seconds = View(
            instrument_type=Histogram,
            instrument_unit="s",
            aggregation=ExplicitBucketHistogramAggregation(SECONDS_BUCKETS),
        )
        metrics.set_meter_provider(
            MeterProvider(resource=resource, metric_readers=[PrometheusMetricReader()], views=[seconds])
        )
        HTTPXClientInstrumentor().instrument(request_hook=redact_span, async_request_hook=redact_span_async)
        _configured = True
        return tracer_provider


def instrument_app(app: Any) -> None:
    """Trace every request of a FastAPI app and serve `/metrics` in Prometheus text."""
    from fastapi import Response
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    # No span per ASGI `receive`/`send`: they tripled the spans of every request and told nothing.
    # The server request hook runs once the request's attributes (`http.target` with its path) are set.
    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls="healthz,readyz,metrics",
        exclude_spans=["receive", "send"],
        server_request_hook=redact_span,
    )

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def inject_headers(
    headers: MutableMapping[str, Any] | None = None, context: Context | None = None
) -> MutableMapping[str, Any]:
    """Write the W3C trace context (traceparent, tracestate) of `context` (else the current one) into AMQP headers."""
    if headers is None:
        headers = {}
    propagate.inject(headers, context=context)
    return headers


def extract_context(headers: Mapping[str, Any] | None) -> Context:
    carrier = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in (headers or {}).items()}
    return propagate.extract(carrier)


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def meter(name: str) -> metrics.Meter:
    return metrics.get_meter(name)


def main(argv: list[str] | None = None) -> int:
    """`python -m shared.telemetry user-hash [EMAIL…]`: each e-mail's hash (e-mails from stdin if none given).

    Run it where TELEMETRY_USER_SALT is the deployment's, to find which user a `user_hash` label names.
    """
    import sys

    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] != "user-hash":
        print("usage: python -m shared.telemetry user-hash [EMAIL...]  (or e-mails on stdin)", file=sys.stderr)
        return 2
    emails = args[1:] or [line.strip() for line in sys.stdin if line.strip()]
    for email in emails:
        print(f"{user_hash(email)}  {email}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
