"""The files in deploy/: Prometheus config and alert rules (checked and unit-tested by promtool), the
Grafana provisioning and dashboard, the OpenTelemetry collector, and the compose services to view them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy/prometheus"
GRAFANA = ROOT / "deploy/grafana"
RUNBOOK = ROOT / "docs/runbook.md"
SERVICES = {"sync-core": 8003, "graph-webhook": 8001, "erp-connector": 8002}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is missing: it validates deploy/prometheus. Install Debian's `prometheus` package "
            "(`apt-get install -y --no-install-recommends prometheus`; .ci/run does it in CI)."
        )
    return path


def run_promtool(*args: str) -> str:
    result = subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def test_prometheus_config_and_alert_rules_pass_promtool_check() -> None:
    assert "SUCCESS" in run_promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert "SUCCESS" in run_promtool("check", "rules", str(PROMETHEUS / "alerts.yml"))


def test_prometheus_scrapes_every_service_by_its_compose_name_and_port() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for service, port in SERVICES.items():
        targets = [t for sc in jobs[service]["static_configs"] for t in sc["targets"]]
        assert targets == [f"{service}:{port}"]
        assert jobs[service].get("metrics_path", "/metrics") == "/metrics"


# Synthetic series in, expected alerts out (promtool's rule unit tests). The rules are tested
# without their annotations, which `promtool check rules` validates as templates.
ALERT_CASES = """
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'up{job="sync-core", instance="sync-core:8003"}'
        values: '1 1 0 0 0 0 0'
      - series: 'up{job="graph-webhook", instance="graph-webhook:8001"}'
        values: '1x6'
      - series: 'sync_broker_up{job="sync-core", instance="sync-core:8003"}'
        values: '1 1 0 0 0 0 0'
    alert_rule_test:
      - {eval_time: 2m, alertname: SyncServiceDown, exp_alerts: []}
      - eval_time: 6m
        alertname: SyncServiceDown
        exp_alerts: [{exp_labels: {severity: critical, job: sync-core, instance: "sync-core:8003"}}]
      - {eval_time: 3m, alertname: SyncBrokerUnreachable, exp_alerts: []}
      - eval_time: 6m
        alertname: SyncBrokerUnreachable
        exp_alerts: [{exp_labels: {severity: critical}}]

  - interval: 1m
    input_series:
      # Two sync-core replicas report the same broker queue: one alert, not two.
      - series: 'sync_queue_messages{job="sync-core", instance="a", queue="sync-core.dlq", role="dead-letter"}'
        values: '0 0 1 1 1 1'
      - series: 'sync_queue_messages{job="sync-core", instance="b", queue="sync-core.dlq", role="dead-letter"}'
        values: '0 0 1 1 1 1'
      - series: 'sync_queue_messages{job="sync-core", instance="a", queue="graph-webhook.dlq", role="dead-letter"}'
        values: '0x5'
    alert_rule_test:
      - {eval_time: 2m, alertname: SyncDeadLettersPresent, exp_alerts: []}
      - eval_time: 4m
        alertname: SyncDeadLettersPresent
        exp_alerts: [{exp_labels: {severity: warning, queue: sync-core.dlq}}]

  - interval: 1m
    input_series:
      # outlook_to_erp: every change takes 60-120 s; erp_to_outlook: under a second.
      - series: 'sync_e2e_latency_seconds_bucket{job="sync-core", direction="outlook_to_erp", le="30"}'
        values: '0x30'
      - series: 'sync_e2e_latency_seconds_bucket{job="sync-core", direction="outlook_to_erp", le="60"}'
        values: '0x30'
      - series: 'sync_e2e_latency_seconds_bucket{job="sync-core", direction="outlook_to_erp", le="120"}'
        values: '0+10x30'
      - series: 'sync_e2e_latency_seconds_bucket{job="sync-core", direction="outlook_to_erp", le="+Inf"}'
        values: '0+10x30'
      - series: 'sync_e2e_latency_seconds_bucket{job="sync-core", direction="erp_to_outlook", le="1"}'
        values: '0+10x30'
      - series: 'sync_e2e_latency_seconds_bucket{job="sync-core", direction="erp_to_outlook", le="60"}'
        values: '0+10x30'
      - series: 'sync_e2e_latency_seconds_bucket{job="sync-core", direction="erp_to_outlook", le="+Inf"}'
        values: '0+10x30'
    alert_rule_test:
      - {eval_time: 5m, alertname: SyncEndToEndLagHigh, exp_alerts: []}
      - eval_time: 20m
        alertname: SyncEndToEndLagHigh
        exp_alerts: [{exp_labels: {severity: warning, direction: outlook_to_erp}}]

  - interval: 1m
    input_series:
      - series: 'webhook_subscription_expiry_horizon_seconds{job="graph-webhook", instance="a", kind="event"}'
        values: '7200 5400 3000 2940 2880 2820 2760 2700 2640'
      - series: 'webhook_subscription_expiry_horizon_seconds{job="graph-webhook", instance="a", kind="contact"}'
        values: '200000x8'
    alert_rule_test:
      - {eval_time: 4m, alertname: GraphSubscriptionExpiringSoon, exp_alerts: []}
      - eval_time: 8m
        alertname: GraphSubscriptionExpiringSoon
        exp_alerts: [{exp_labels: {severity: critical, kind: event}}]

  - interval: 1m
    input_series:
      # sync-core: a third of its Graph requests throttled; graph-webhook: none.
      - series: 'graph_requests_total{job="sync-core", instance="a", method="GET", status="200"}'
        values: '0+60x30'
      - series: 'graph_requests_total{job="sync-core", instance="a", method="GET", status="429"}'
        values: '0+30x30'
      - series: 'graph_requests_total{job="graph-webhook", instance="b", method="POST", status="201"}'
        values: '0+60x30'
    alert_rule_test:
      - {eval_time: 5m, alertname: GraphThrottlingHigh, exp_alerts: []}
      - eval_time: 20m
        alertname: GraphThrottlingHigh
        exp_alerts: [{exp_labels: {severity: warning, job: sync-core}}]

  - interval: 1m
    input_series:
      - series: 'sync_user_healthy{job="sync-core", instance="a", user_hash="0123456789ab"}'
        values: '1 1 0 0 0 0 0 0 0'
      - series: 'sync_user_healthy{job="sync-core", instance="a", user_hash="ba9876543210"}'
        values: '1x8'
      - series: 'sync_journal_failures_total{instance="a", user_hash="0123456789ab", kind="event"}'
        values: '0+1x60'
      - series: 'sync_journal_failures_total{instance="a", user_hash="ba9876543210", kind="event"}'
        values: '0+0.1x60'
    alert_rule_test:
      - {eval_time: 4m, alertname: SyncUserUnhealthy, exp_alerts: []}
      - eval_time: 8m
        alertname: SyncUserUnhealthy
        exp_alerts: [{exp_labels: {severity: warning, user_hash: "0123456789ab"}}]
      - eval_time: 40m
        alertname: SyncUserItemsFailing
        exp_alerts: [{exp_labels: {severity: warning, user_hash: "0123456789ab"}}]

  - interval: 1m
    input_series:
      - series: 'sync_queue_messages{job="sync-core", instance="a", queue="sync-core.s0", role="work"}'
        values: '2000x30'
      - series: 'sync_queue_messages{job="sync-core", instance="b", queue="sync-core.s0", role="work"}'
        values: '2000x30'
      - series: 'sync_queue_messages{job="sync-core", instance="a", queue="sync-core.s1", role="work"}'
        values: '10x30'
    alert_rule_test:
      - {eval_time: 10m, alertname: SyncWorkQueueBacklog, exp_alerts: []}
      - eval_time: 20m
        alertname: SyncWorkQueueBacklog
        exp_alerts: [{exp_labels: {severity: warning}}]
"""


def test_every_alert_fires_on_bad_series_and_stays_quiet_on_good_ones(tmp_path: Path) -> None:
    doc = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(doc))
    cases = yaml.safe_load(ALERT_CASES)
    cases["rule_files"] = ["alerts.yml"]
    tested = {t["alertname"] for test in cases["tests"] for t in test["alert_rule_test"] if t["exp_alerts"]}
    assert tested == {r["alert"] for r in alert_rules()}, "every alert has a case in which it fires"
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump(cases))
    assert "SUCCESS" in run_promtool("test", "rules", str(tmp_path / "alerts_test.yml"))


def test_issue_alerts_exist_and_each_has_a_runbook_section() -> None:
    rules = {r["alert"]: r for r in alert_rules()}
    # The alerts the SRE asked for: dead letters, lag, subscription expiry, 429s, a user, a service.
    for wanted in (
        "SyncDeadLettersPresent",
        "SyncEndToEndLagHigh",
        "GraphSubscriptionExpiringSoon",
        "GraphThrottlingHigh",
        "SyncUserUnhealthy",
        "SyncServiceDown",
    ):
        assert wanted in rules
    runbook = RUNBOOK.read_text()
    headings = {m.group(1).strip() for m in re.finditer(r"^## (.+)$", runbook, re.MULTILINE)}
    for name, rule in rules.items():
        assert name in headings, f"docs/runbook.md has no '## {name}' section"
        section = runbook.split(f"## {name}", 1)[1].split("\n## ", 1)[0]
        for part in ("What it means", "How to look", "What to do"):
            assert part in section, f"runbook section {name} lacks '{part}'"
        assert rule["annotations"]["runbook"] == f"docs/runbook.md#{name.lower()}"
        assert rule["labels"]["severity"] in {"warning", "critical"}


def test_grafana_provisions_prometheus_and_the_dashboard() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    [prometheus] = datasources["datasources"]
    assert prometheus["type"] == "prometheus" and prometheus["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/dashboards.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"

    dashboard = json.loads((GRAFANA / "dashboards/outlook-erp-sync.json").read_text())
    assert dashboard["uid"] and dashboard["title"]
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == ["Latency", "Throughput", "Queues", "Errors"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == prometheus["uid"], panel["title"]
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]
        assert panel["gridPos"]["w"] > 0 and panel["gridPos"]["h"] > 0


def test_otel_collector_pipelines_use_only_configured_parts_and_reach_jaeger() -> None:
    config = yaml.safe_load((ROOT / "deploy/otel/collector.yaml").read_text())
    for name, pipeline in config["service"]["pipelines"].items():
        for part in ("receivers", "processors", "exporters"):
            for component in pipeline.get(part, []):
                assert component in config[part], f"pipeline {name} uses undefined {part[:-1]} {component}"
    traces = config["service"]["pipelines"]["traces"]
    assert "otlp" in traces["receivers"]
    assert any(e.startswith("otlp/jaeger") for e in traces["exporters"])
    assert config["exporters"]["otlp/jaeger"]["endpoint"] == "jaeger:4317"
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["http"]["endpoint"].endswith(":4318") and protocols["grpc"]["endpoint"].endswith(":4317")
    # memory_limiter must run first to protect the collector.
    assert traces["processors"][0] == "memory_limiter"
    for extension in config["service"].get("extensions", []):
        assert extension in config["extensions"]


def test_compose_runs_the_viewers_with_the_deploy_files() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for viewer in ("otel-collector", "jaeger", "prometheus", "grafana"):
        assert viewer in services, f"docker-compose.yml has no {viewer} service"
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
    app_env = services["sync-core"]["environment"]
    assert app_env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    prometheus_mounts = " ".join(services["prometheus"]["volumes"])
    assert "./deploy/prometheus:/etc/prometheus" in prometheus_mounts
    grafana_mounts = " ".join(services["grafana"]["volumes"])
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning" in grafana_mounts
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards" in grafana_mounts
