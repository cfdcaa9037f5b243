"""One trace per change, hop by hop: each span is the child of the hop before it (R25: a failure's
trace code finds the whole server-side path).

Cross-process hops must be direct parent/child pairs (HTTP client → server, publish → process);
inside a service, other internal spans may sit between two hops.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.telemetry import user_hash
from tests.observability.spans import Hop, SpanTree, attr, client, consumer, internal, producer, server, trace_id
from tests.support.system import USER_EMAIL, eventually, running_system

OUTLOOK_TO_ERP = [
    Hop("Graph notification POST (graph-webhook server span)", server("POST", "/notifications")),
    Hop("graph.changed publish span", producer("graph.changed")),
    Hop("sync-core process span", consumer("graph.changed")),
    Hop("delta read span", internal("delta read"), child_of_previous=False),
    Hop("apply to erp span", internal("apply to erp"), child_of_previous=False),
    Hop("ERP write (sync-core client span)", client("POST", "/api/v1/activities"), child_of_previous=False),
    Hop("ERP write (erp-connector server span)", server("POST", "/api/v1/activities")),
]

ERP_TO_OUTLOOK = [
    Hop("ERP write (erp-connector server span)", server("POST", "/api/v1/activities")),
    Hop("outbox relay span", internal("erp outbox relay"), child_of_previous=False),
    Hop("erp.changed publish span", producer("erp.changed"), child_of_previous=False),
    Hop("sync-core process span", consumer("erp.changed")),
    Hop("apply to outlook span", internal("apply to outlook"), child_of_previous=False),
    Hop("Graph write (sync-core client span)", client("POST", "/events"), child_of_previous=False),
]


def _when(days: int) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)


def _graph_time(dt: datetime) -> dict[str, str]:
    return {"dateTime": dt.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


def _find_chain(exporter: InMemorySpanExporter, hops: list[Hop]) -> list[ReadableSpan] | str:
    """The first complete chain ending in a span that matches the last hop, else why none is complete."""
    tree = SpanTree(exporter.get_finished_spans())
    reasons = []
    for leaf in (s for s in tree.spans if hops[-1].matches(s)):
        found = tree.chain(leaf, hops)
        if isinstance(found, list):
            return found
        reasons.append(f"{found}\n{tree.render(trace_id(leaf))}")
    return "\n\n".join(reasons) or f"no span matches: {hops[-1].what}"


async def _chain(exporter: InMemorySpanExporter, hops: list[Hop]) -> list[ReadableSpan]:
    last: list[Any] = [""]

    async def probe() -> list[ReadableSpan] | None:
        found = _find_chain(exporter, hops)
        last[0] = found
        return found if isinstance(found, list) else None

    try:
        return await eventually(probe, timeout=10)  # type: ignore[no-any-return]
    except AssertionError:
        raise AssertionError(f"trace chain incomplete:\n{last[0]}") from None


def _assert_no_email(exporter: InMemorySpanExporter, trace: str) -> None:
    local = USER_EMAIL.split("@")[0]
    for span in exporter.get_finished_spans():
        if trace_id(span) != trace:
            continue
        for key, value in (span.attributes or {}).items():
            assert local not in str(value), f"e-mail in span {span.name!r} attribute {key}={value!r}"


async def test_trace_of_an_outlook_change_chains_notification_publish_process_delta_and_erp_write_R25(
    common_settings, database_url, tmp_path, span_exporter
) -> None:
    async with running_system(common_settings, database_url, tmp_path) as system:
        span_exporter.clear()
        start = _when(3)
        await system.graph.post_json(
            f"/users/{system.graph_user_id}/events",
            json={
                "subject": "Trace me to the ERP",
                "start": _graph_time(start),
                "end": _graph_time(start + timedelta(hours=1)),
            },
        )

        notified, published, processed, delta, apply, erp_client, erp_server = await _chain(
            span_exporter, OUTLOOK_TO_ERP
        )

        assert len({trace_id(s) for s in (notified, published, processed, delta, erp_client, erp_server)}) == 1
        # The consumer processed the very message the webhook published.
        assert attr(processed, "messaging.message.id") == attr(published, "messaging.message.id")
        assert attr(published, "messaging.system") == attr(processed, "messaging.system") == "rabbitmq"
        shard = attr(published, "messaging.rabbitmq.destination.routing_key").rsplit(".", 1)[-1]
        assert attr(processed, "messaging.destination.name").endswith(f"sync-core.s{shard}")
        assert attr(delta, "sync.kind") == "event"
        assert attr(apply, "sync.direction") == "outlook_to_erp"
        assert attr(apply, "sync.action") == "create"
        assert attr(apply, "sync.rule"), "the decision's rule id is on the span"
        assert attr(notified, "sync.user_hash") == user_hash(USER_EMAIL)
        _assert_no_email(span_exporter, trace_id(notified))


async def test_trace_of_an_erp_change_chains_erp_write_outbox_publish_process_and_graph_write_R25(
    common_settings, database_url, tmp_path, span_exporter
) -> None:
    async with running_system(common_settings, database_url, tmp_path) as system:
        span_exporter.clear()
        start = _when(4)
        r = await system.erp.post(
            "/api/v1/activities",
            json={
                "kind": "meeting",
                "subject": "Trace me to Outlook",
                "start": start.isoformat().replace("+00:00", "Z"),
                "end": (start + timedelta(minutes=30)).isoformat().replace("+00:00", "Z"),
                "representative": "REP01",
            },
        )
        assert r.status_code == 201, r.text

        erp_server, relay, published, processed, apply, graph_client = await _chain(span_exporter, ERP_TO_OUTLOOK)

        assert len({trace_id(s) for s in (erp_server, relay, published, processed, apply, graph_client)}) == 1
        assert attr(processed, "messaging.message.id") == attr(published, "messaging.message.id")
        assert attr(relay, "messaging.message.id") == attr(published, "messaging.message.id")
        assert attr(apply, "sync.kind") == "event"
        assert attr(apply, "sync.direction") == "erp_to_outlook"
        assert attr(apply, "sync.action") == "create"
        _assert_no_email(span_exporter, trace_id(erp_server))
