"""`/metrics` of every service, after real traffic both ways, a 429, a 503 burst, a failed item and a
dead letter: the metrics the dashboard and the alert rules are built on are there (R29, R35).

In tests the services share one process and so one registry: each service's `/metrics` shows every
service's metrics. The test still reads each endpoint and checks, per service, the metrics that
service produces in production, and that the alert rules and the dashboard name only metrics that
exist.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika
import yaml

from shared.envelope import MessageType
from shared.metrics import refresh_all
from shared.telemetry import user_hash
from tests.support.metrics import Samples, scrape, values
from tests.support.system import USER_EMAIL, System, eventually, running_system

ROOT = Path(__file__).resolve().parents[2]

PER_SERVICE = {
    "graph-webhook": {
        "webhook_notifications_total",
        "webhook_subscriptions",
        "webhook_subscription_expiry_horizon_seconds",
        "sync_messages_published_total",
        "graph_requests_total",
        "process_resident_memory_bytes",
        "sync_event_loop_lag_seconds_bucket",
    },
    "sync-core": {
        "sync_messages_consumed_total",
        "sync_messages_retried_total",
        "sync_messages_dead_lettered_total",
        "sync_queue_messages",
        "sync_queue_consumers",
        "sync_broker_up",
        "sync_items_total",
        "sync_e2e_latency_seconds_bucket",
        "sync_user_healthy",
        "sync_users",
        "sync_journal_failures_total",
        "graph_requests_total",
        "graph_retry_after_waited_seconds_total",
        "process_resident_memory_bytes",
        "sync_event_loop_lag_seconds_bucket",
    },
    "erp-connector": {
        "erp_outbox_relayed_total",
        "sync_messages_published_total",
        "process_resident_memory_bytes",
        "sync_event_loop_lag_seconds_bucket",
    },
}
# Series Prometheus makes itself, not the services.
PROMETHEUS_OWN = {"up", "ALERTS", "ALERTS_FOR_STATE", "time", "vector", "scalar"}


def _when(days: int) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)


def _graph_time(dt: datetime) -> dict[str, str]:
    return {"dateTime": dt.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


async def _traffic(system: System, amqp_url: str, prefix: str) -> None:
    """A 429 under an Outlook event, an ERP meeting, a refused contact, two poison messages."""
    user = system.graph_user_id
    await system.sim_control("POST", "faults", {"force_429": {"count": 1, "retry_after": 0.2, "user": user}})
    start = _when(3)
    await system.graph.post_json(
        f"/users/{user}/events",
        json={"subject": "Metrics event", "start": _graph_time(start), "end": _graph_time(start + timedelta(hours=1))},
    )

    async def imported() -> bool:
        return any(a["subject"] == "Metrics event" for a in await system.erp_items("activities"))

    await eventually(imported)

    r = await system.erp.post(
        "/api/v1/activities",
        json={
            "kind": "meeting",
            "subject": "Metrics meeting",
            "start": _when(4).isoformat().replace("+00:00", "Z"),
            "end": (_when(4) + timedelta(minutes=30)).isoformat().replace("+00:00", "Z"),
            "representative": "REP01",
        },
    )
    assert r.status_code == 201, r.text

    # R11: an unknown company code is a journal error for this user.
    await system.graph.post_json(
        f"/users/{user}/contacts",
        json={
            "givenName": "Nadia",
            "surname": "Unknown",
            "emailAddresses": [{"address": "nadia@nowhere.example", "name": "Nadia Unknown"}],
            "companyName": "#NOSUCHCODE#",
        },
    )

    # A journal line whose reason is not text: its handler fails every time, so it goes through the
    # retry queues to the dead-letter queue. Then a body that is no envelope: dead-lettered at once.
    await system.publish(MessageType.JOURNAL_LINE, user=USER_EMAIL, outcome="failed", reason={"not": "text"})
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.default_exchange.publish(aio_pika.Message(b"not json"), routing_key=f"{prefix}sync-core.s0")

    async def mirrored() -> bool:
        return any(e["data"].get("subject") == "Metrics meeting" for e in await system.sim_items("events"))

    async def journaled_failure() -> bool:
        return any(j["outcome"] == "failed" for j in await system.journal())

    await eventually(mirrored, timeout=20)
    await eventually(journaled_failure)


def _names_in_expression(expr: str) -> set[str]:
    """Metric names of a PromQL expression (identifiers before `{`, `[`, `)` or an operator, not functions)."""
    without_labels = re.sub(r"\{[^}]*\}", "{}", expr)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_labels)
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", without_ranges))
    keywords = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}
    keywords |= {"sum", "min", "max", "avg", "count", "group", "topk", "bottomk", "quantile", "stddev", "stdvar"}
    labels = set(re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", without_ranges))
    label_names = {n.strip() for group in labels for n in group.split(",")}
    return {
        n
        for n in names
        if n not in keywords and n not in label_names and not n.isdigit() and not re.fullmatch(r"\d+[smhd]?", n)
    }


def _defined_in_code() -> set[str]:
    """Instrument names created in the services' code, as Prometheus names them."""
    pattern = re.compile(
        r'(create_counter|create_histogram|create_up_down_counter|create_observable_gauge|SampledGauge)\(\s*"(\w+)"'
    )
    names: set[str] = set()
    for folder in ("shared", "services"):
        for path in (ROOT / folder).rglob("*.py"):
            for kind, name in pattern.findall(path.read_text()):
                names.add(f"{name}_total" if kind == "create_counter" else name)
    return names


def _referenced_metrics() -> dict[str, set[str]]:
    """Metric names used by the alert rules and by the dashboard's queries, by where they are used."""
    used: dict[str, set[str]] = {}
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            used.setdefault(f"alert {rule.get('alert') or rule.get('record')}", set()).update(
                _names_in_expression(str(rule["expr"]))
            )
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/outlook-erp-sync.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            used.setdefault(f"panel {panel['title']!r}", set()).update(_names_in_expression(target["expr"]))
    return used


async def test_metrics_of_every_service_after_traffic_R29_R35(
    common_settings, database_url, tmp_path, amqp_url, amqp_prefix
) -> None:
    async with running_system(common_settings, database_url, tmp_path) as system:
        await _traffic(system, amqp_url, amqp_prefix)

        seen: list[Samples] = [{}]

        async def dead_letter_counted() -> bool:
            await refresh_all()
            seen[0] = samples = await scrape(system.sync_url)
            dead = values(samples, "sync_queue_messages", role="dead-letter")
            return bool(dead and max(dead) >= 2 and values(samples, "sync_messages_retried_total"))

        try:
            # Three retry delays, each a queue TTL the broker applies in its own time under load.
            await eventually(dead_letter_counted, timeout=40)
        except AssertionError:
            raise AssertionError(
                "no dead letter or no retry seen: "
                f"queues={seen[0].get('sync_queue_messages')} retried={seen[0].get('sync_messages_retried_total')} "
                f"dead_lettered={seen[0].get('sync_messages_dead_lettered_total')}"
            ) from None
        scraped = {
            "graph-webhook": await scrape(system.webhook_url),
            "sync-core": await scrape(system.sync_url),
            "erp-connector": await scrape(system.erp_url),
        }

    for service, wanted in PER_SERVICE.items():
        missing = sorted(wanted - set(scraped[service]))
        assert not missing, f"{service} /metrics lacks {missing}"

    core = scraped["sync-core"]
    hook = scraped["graph-webhook"]
    me = user_hash(USER_EMAIL)
    # Queues: every work queue has its consumer; retry and dead-letter queues are sampled too.
    work_consumers = values(core, "sync_queue_consumers", role="work")
    assert len(work_consumers) == common_settings.sync_shards and min(work_consumers) >= 1
    assert values(core, "sync_queue_messages", role="retry")
    assert values(core, "sync_queue_messages", role="control")
    assert values(core, "sync_broker_up") == [1.0]
    # Both directions' end-to-end latency, items by kind/direction/outcome.
    for direction in ("outlook_to_erp", "erp_to_outlook"):
        assert values(core, "sync_e2e_latency_seconds_count", direction=direction), direction
        assert values(core, "sync_items_total", kind="event", direction=direction), direction
    assert values(core, "sync_e2e_latency_seconds_bucket", le="60"), "buckets are in seconds"
    # Graph: the 429 and the time waited on its Retry-After.
    assert sum(values(core, "graph_requests_total", status="429")) >= 1
    assert sum(values(core, "graph_retry_after_waited_seconds_total")) > 0
    # Per user, as a hash only.
    assert values(core, "sync_user_healthy", user_hash=me) == [1.0]
    assert sum(values(core, "sync_journal_failures_total", user_hash=me, kind="contact")) >= 1
    # Notifications and subscriptions.
    assert sum(values(hook, "webhook_notifications_total", outcome="published")) >= 1
    assert values(hook, "webhook_subscriptions", status="active") == [1.0, 1.0, 1.0]
    horizons = values(hook, "webhook_subscription_expiry_horizon_seconds")
    assert len(horizons) == 3 and min(horizons) > 3600, horizons
    # No e-mail anywhere in a label.
    for service, samples in scraped.items():
        for name, series in samples.items():
            for labels, _ in series:
                assert not any("@" in v for v in labels.values()), f"{service} {name} has an e-mail label: {labels}"

    # Counters that have not counted anything yet are not on /metrics: names defined in the code count too.
    everything = set().union(*scraped.values()) | _defined_in_code()
    exported = everything | {n.removesuffix(s) for n in everything for s in ("_bucket", "_count", "_sum", "_total")}
    for where, names in _referenced_metrics().items():
        unknown = sorted(names - exported - PROMETHEUS_OWN)
        assert not unknown, f"{where} uses metrics no service exports: {unknown}"
