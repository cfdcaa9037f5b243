"""`POST /notifications` is answered by `NotificationsEndpoint` ahead of FastAPI: what the FastAPI route and the
OpenTelemetry instrumentation gave it must still be there (server span continuing the caller's trace, producer
spans as its children, `http.server.*` series for the route, 500 on a bug)."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from test_webhook_notifications import _change, _rows, running
from webhook_support import Collector, webhook_settings_for

from graph_sim.testing import SimServer
from graph_webhook.app import WebhookApp, create_app
from graph_webhook.settings import GraphWebhookSettings
from shared.envelope import MessageType
from shared.settings import CommonSettings


@pytest.fixture
def settings(common_settings: CommonSettings, sim_server: SimServer, tmp_path: Any) -> GraphWebhookSettings:
    return webhook_settings_for(
        common_settings, sim_server, f"sqlite:///{tmp_path}/webhook.db", subscriptions_enabled=False
    )


def test_create_app_installs_the_endpoint(settings: GraphWebhookSettings) -> None:
    assert isinstance(create_app(settings), WebhookApp)


async def test_the_server_span_continues_the_callers_trace_and_parents_each_publish(
    settings: GraphWebhookSettings, collector: Collector, span_exporter: InMemorySpanExporter
) -> None:
    span_exporter.clear()
    batch = [_change("sub-ann-ev", "secret-ann-ev", item="E1"), _change("sub-bob-td", "secret-bob-td", item="T1")]
    async with running(settings, _rows()) as (http, _):
        # The test's httpx client is instrumented: its CLIENT span's context goes in `traceparent`.
        response = await http.post("/notifications", json={"value": batch})
        assert response.status_code == 202 and response.content == b""
        await collector.wait(MessageType.GRAPH_CHANGED, 2)
        metrics = (await http.get("/metrics")).text
    [server] = [s for s in span_exporter.get_finished_spans() if s.kind is SpanKind.SERVER and s.name.endswith("ions")]
    attributes: dict[str, Any] = dict(server.attributes or {})
    assert server.name == "POST /notifications"
    [client] = [
        s
        for s in span_exporter.get_finished_spans()
        if s.kind is SpanKind.CLIENT and str((s.attributes or {}).get("http.url", "")).endswith("/notifications")
    ]
    assert server.parent is not None and server.parent.span_id == client.context.span_id  # type: ignore[union-attr]
    assert server.context.trace_id == client.context.trace_id  # type: ignore[union-attr]
    assert attributes["http.method"] == "POST" and attributes["http.route"] == "/notifications"
    assert attributes["http.status_code"] == 202 and attributes["sync.notification.published"] == 2
    producers = [s for s in span_exporter.get_finished_spans() if s.kind is SpanKind.PRODUCER]
    assert len(producers) == 2
    assert all(p.parent is not None and p.parent.span_id == server.context.span_id for p in producers)  # type: ignore[union-attr]
    durations = [line for line in metrics.splitlines() if line.startswith("http_server_duration_milliseconds_count{")]
    assert any('http_target="/notifications"' in line and 'http_status_code="202"' in line for line in durations)
    assert any(line.startswith("http_server_active_requests{") for line in metrics.splitlines())


async def test_a_bug_in_the_intake_is_a_500_on_an_error_span(
    settings: GraphWebhookSettings, span_exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    span_exporter.clear()
    async with running(settings, _rows()) as (http, state):

        async def broken(*_: object) -> None:
            raise RuntimeError("bug")

        monkeypatch.setattr(state.intake, "accept", broken)
        response = await http.post("/notifications", json={"value": [_change("sub-ann-ev", "secret-ann-ev")]})
        handshake = await http.post("/notifications?validationToken=still+works")
    assert response.status_code == 500
    assert handshake.status_code == 200 and handshake.text == "still works"
    [server, _] = [s for s in span_exporter.get_finished_spans() if s.name == "POST /notifications"]
    assert server.status.status_code is StatusCode.ERROR
    assert server.attributes is not None and server.attributes["http.status_code"] == 500


async def test_other_methods_and_paths_still_go_through_fastapi(settings: GraphWebhookSettings) -> None:
    async with running(settings, []) as (http, _):
        assert (await http.get("/notifications")).status_code == 405
        assert (await http.post("/lifecycle", json={"value": []})).status_code == 202
        assert (await http.post("/lifecycle?validationToken=abc")).text == "abc"
