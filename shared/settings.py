"""Settings shared by every service, read from the environment (and `.env`)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_FILE = ".env"


class CommonSettings(BaseSettings):
    """What every service needs: broker, telemetry, logs and the tenant it serves."""

    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore", populate_by_name=True)

    environment: Literal["development", "test", "production"] = "development"
    tenant: str = Field(default="demo", validation_alias="SYNC_TENANT")
    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    # Prefix of every exchange and queue name: lets deployments (or test runs) share a broker.
    amqp_prefix: str = ""
    # Unacknowledged messages per consumer: 8 shards × 16 keep both cores busy without holding a
    # large backlog in memory (docs/benchmarks.md, session 3).
    amqp_prefetch: int = 16
    # Work for one (user, collection) is serialised by routing it to one of this many
    # single-active-consumer queues; every service of a deployment must agree on it.
    sync_shards: int = 8
    # Delay of each retry before a message goes to the dead-letter queue.
    retry_delays_ms: list[int] = [1000, 5000, 30000]
    log_level: str = "INFO"
    log_json: bool = True
    otel_exporter_otlp_endpoint: str | None = None
    # Key of `user_hash`, the only way users appear in metrics, spans and info logs: the same secret
    # on every service of a deployment.
    telemetry_user_salt: SecretStr = SecretStr("")
    # Template for links to the trace viewer, e.g. http://localhost:16686/trace/{trace_id}.
    trace_url_template: str = "http://127.0.0.1:16686/trace/{trace_id}"


class GraphSettings(BaseSettings):
    """How to reach Microsoft Graph (or the Graph simulator, which is configured the same way)."""

    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore")

    graph_tenant_id: str = "00000000-0000-0000-0000-0000000000aa"
    graph_client_id: str = "11111111-1111-1111-1111-111111111111"
    graph_client_secret: SecretStr = SecretStr("demo-secret-change-me")
    graph_base_url: str = "https://127.0.0.1:8010/v1.0"
    graph_authority_host: str = "https://127.0.0.1:8010"
    # CA bundle that signs Graph's TLS certificate; empty means the system trust store.
    graph_ca_bundle: str | None = "var/graph-sim/ca.pem"
    graph_max_concurrency_per_mailbox: int = 4
    graph_max_retry_after_s: float = 60.0
    graph_max_attempts: int = 6
    graph_timeout_s: float = 30.0
    # Idle connections to Graph kept open. httpcore checks every pooled connection's socket on each
    # request, so a large pool costs CPU on every call (docs/benchmarks.md, session 6); bursts above
    # it still open connections, which are closed after use.
    graph_keepalive_connections: int = Field(default=16, ge=1, le=200)
    # Graph requests in flight at once, over small connection pools (ADR 0029); more wait their turn.
    # Each open TLS connection costs memory; Graph itself allows 4 at once per mailbox.
    graph_max_connections: int = Field(default=64, ge=1, le=1000)


@lru_cache
def get_common_settings() -> CommonSettings:
    return CommonSettings()
