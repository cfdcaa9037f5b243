"""`python -m bench` end to end on its smallest profile: every figure of issue 10 lands in the JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEYS = [
    "webhook_notifications_per_s",
    "webhook_p99_ms",
    "e2e_outlook_to_erp_p50_ms",
    "e2e_outlook_to_erp_p99_ms",
    "e2e_erp_to_outlook_p50_ms",
    "e2e_erp_to_outlook_p99_ms",
    "core_items_per_s",
    "initial_sync_s",
    "incremental_cost_ratio_50k_vs_1k",
    "max_rss_mb",
]
BASELINES = [
    "baseline_amqp_roundtrip_p50_ms",
    "baseline_amqp_roundtrip_p99_ms",
    "baseline_amqp_confirmed_publish_per_s",
    "baseline_http_get_p50_ms",
    "baseline_http_get_p99_ms",
]
RATIOS = [
    "webhook_throughput_ratio_raw_publish_over_webhook",
    "e2e_outlook_to_erp_p50_ratio_over_bare_hop",
    "e2e_erp_to_outlook_p50_ratio_over_bare_hop",
    # The core drain against the bare-I/O CPU of its own traffic, and the rate that floor would allow.
    "core_cpu_floor_ms_per_item",
    "core_cpu_ratio_over_floor",
    "core_items_per_s_at_cpu_floor",
]


@pytest.mark.timeout(120)
def test_smoke_profile_writes_every_figure_with_baselines_and_ratios(amqp_url: str, tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--profile", "smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=110,
        env={**os.environ, "AMQP_URL": amqp_url, "BENCH_VAR_DIR": str(tmp_path / "var")},
        cwd=ROOT,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    for key in KEYS + BASELINES + RATIOS:
        assert isinstance(result.get(key), int | float), f"{key} missing or empty: {result.get(key)!r}"
    assert all(result["goals"][k]["met"] in (True, False) for k in KEYS), result["goals"]
    assert result["machine"]["start"]["nproc"] and result["machine"]["start"]["load_average"]
    # The harness itself must stay quick enough for `make test`.
    assert elapsed < 60, f"smoke bench took {elapsed:.0f}s"
