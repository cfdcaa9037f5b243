"""How a sync-core replica's processes share the shards, and how a worker gets its settings (ADR 0055)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from sync_core.settings import SyncCoreSettings
from sync_core.workers import own_shards, settings_env


@given(shards=st.integers(1, 64), workers=st.integers(1, 16))
def test_every_shard_has_exactly_one_primary_process(shards: int, workers: int) -> None:
    taken = [s for index in range(workers) for s in own_shards(shards, workers, index)]
    assert sorted(taken) == list(range(shards))


def test_one_process_consumes_every_shard() -> None:
    assert own_shards(8, 1, 0) == list(range(8))


def test_a_worker_gets_the_main_process_settings_whatever_they_were_built_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Settings built in code (a test, an embedding) reach the worker, secrets and aliases included."""
    main = SyncCoreSettings(
        tenant="acme",
        amqp_prefix="t1.",
        sync_database_url="sqlite:///elsewhere.db",
        erp_api_token=SecretStr("s3cret"),
        retry_delays_ms=[10, 20],
        otel_exporter_otlp_endpoint=None,
        sync_core_workers=3,
        session_cookie_secure=True,
    )
    env = settings_env(main)
    assert env["SYNC_TENANT"] == "acme" and env["ERP_API_TOKEN"] == "s3cret"
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir("/")  # no .env here
    worker = SyncCoreSettings()
    assert worker.tenant == "acme"
    assert worker.amqp_prefix == "t1."
    assert worker.sync_database_url == "sqlite:///elsewhere.db"
    assert worker.erp_api_token.get_secret_value() == "s3cret"
    assert worker.retry_delays_ms == [10, 20]
    assert worker.sync_core_workers == 3 and worker.session_cookie_secure is True
    assert not worker.otel_exporter_otlp_endpoint


@given(in_flight=st.integers(1, 16), workers=st.integers(1, 16))
def test_erp_batches_in_flight_are_shared_out_among_the_processes(in_flight: int, workers: int) -> None:
    """ERP_BATCH_IN_FLIGHT is per replica: its processes together send no more batches at once (ADR
    0027), each at least one; one process keeps the whole setting."""
    settings = SyncCoreSettings(erp_batch_in_flight=in_flight, sync_core_workers=workers)
    each = settings.erp_batch_in_flight_per_process
    assert each >= 1
    assert each * workers <= in_flight or each == 1
    if workers == 1:
        assert each == in_flight
