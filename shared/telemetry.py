"""OpenTelemetry set-up: traces (OTLP when configured), metrics as Prometheus text, AMQP context."""

from __future__ import annotations

import threading
from collections.abc import Mapping, MutableMapping
from typing import Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

_lock = threading.Lock()
_configured = False


def setup_telemetry(service_name: str, otlp_endpoint: str | None = None) -> TracerProvider:
    """Install tracer and meter providers once per process and return the tracer provider.

    Several services may share one process in tests: the first call wins and later calls reuse
    its providers, so spans of every service land in one exporter.
    """
    global _configured
    with _lock:
        provider = trace.get_tracer_provider()
        if _configured and isinstance(provider, TracerProvider):
            return provider
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        resource = Resource.create({"service.name": service_name})
        tracer_provider = TracerProvider(resource=resource)
        if otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            tracer_provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp_endpoint.rstrip('/')}/v1/traces"))
            )
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[PrometheusMetricReader()]))
        HTTPXClientInstrumentor().instrument()
        _configured = True
        return tracer_provider


def instrument_app(app: Any) -> None:
    """Trace every request of a FastAPI app and serve `/metrics` in Prometheus text."""
    from fastapi import Response
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    # No span per ASGI `receive`/`send`: they tripled the spans of every request and told nothing.
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics", exclude_spans=["receive", "send"])

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def inject_headers(headers: MutableMapping[str, Any] | None = None) -> MutableMapping[str, Any]:
    """Write the current W3C trace context (traceparent, tracestate) into AMQP headers."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if headers is None:
        headers = {}
    headers.update(carrier)
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
