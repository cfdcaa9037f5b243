"""sync-core settings, from the environment."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import ENV_FILE, CommonSettings, GraphSettings

DEMO_OPS_TOKEN = "demo-ops-token"
DEMO_ADMIN_PASSWORD = "admin"
DEMO_SESSION_SECRET = "demo-session-secret-change-me"


class SyncCoreSettings(CommonSettings, GraphSettings):
    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore", populate_by_name=True)

    sync_database_url: str = "sqlite:///var/sync.db"
    sync_core_host: str = "127.0.0.1"
    sync_core_port: int = 8003
    erp_connector_url: str = "http://127.0.0.1:8002"
    erp_api_token: SecretStr = SecretStr("demo-erp-token")
    ops_api_token: SecretStr = SecretStr(DEMO_OPS_TOKEN)
    admin_username: str = "admin"
    admin_password: SecretStr = SecretStr(DEMO_ADMIN_PASSWORD)
    auto_migrate: bool = True
    # Consume the work queues (off for a read-only console replica).
    consume: bool = True
    # Processes of this replica that consume (ADR 0055): the main one (HTTP, console, reconciliation)
    # and `sync_core_workers` - 1 workers, each the primary consumer of its share of the shards. One
    # process runs on one core at most; 2 on a 2-core machine.
    sync_core_workers: int = Field(default=1, ge=1, le=64)
    # How long representative settings and business partners are cached before being read again from the ERP.
    settings_cache_s: float = 30.0
    # Delta rounds: items per page asked of Graph (Prefer: odata.maxpagesize), and how many items of
    # one page are applied at once (distinct items; Graph calls stay within the per-mailbox cap).
    # 20, as many as one ERP batch and one Graph `$batch` take: a page's new items fill both (ADR 0061).
    delta_page_size: int = Field(default=100, ge=1, le=1000)
    delta_apply_concurrency: int = Field(default=20, ge=1, le=64)
    # ERP creates made while `erp_batch_in_flight` sends are busy go together, up to
    # `erp_batch_max` per `POST /api/v1/batch` (1: each alone); none waits to be batched (ADR 0027).
    # In flight per replica: shared out among its `sync_core_workers` processes (at least 1 each).
    erp_batch_max: int = Field(default=20, ge=1, le=100)
    erp_batch_in_flight: int = Field(default=2, ge=1, le=16)

    # Admin console and ops API (docs/operations.md).
    # Signs the console's session cookie; change it and every session ends.
    session_secret: SecretStr = SecretStr(DEMO_SESSION_SECRET)
    session_max_age_s: int = 8 * 3600
    # Send the session cookie over HTTPS only (always on in production).
    session_cookie_secure: bool = False
    # Time zone the console shows times in (IANA name); the API always answers in UTC.
    console_timezone: str = "UTC"
    # graph-webhook's base URL: the subscription status comes from it.
    graph_webhook_url: str = "http://127.0.0.1:8001"
    # Each check of "test connection" and each call to another service gives up after this long.
    ops_timeout_s: float = 10.0
    # Reconciliation (R26): every enabled user this often (0: only on demand); items changed less
    # than `reconcile_settle_s` ago are left out, their sync may still be on its way.
    reconcile_interval_s: float = 3600.0
    reconcile_settle_s: float = 120.0

    @property
    def erp_batch_in_flight_per_process(self) -> int:
        """`erp_batch_in_flight` shared out among the replica's processes, at least 1 each: each
        process's batches then stay as large as one process's were, and the ERP gets no more batches
        at once (docs/benchmarks.md, session 10)."""
        return max(1, self.erp_batch_in_flight // self.sync_core_workers)

    @model_validator(mode="after")
    def _refuse_demo_secrets_in_production(self) -> SyncCoreSettings:
        if self.environment == "production":
            if self.ops_api_token.get_secret_value() == DEMO_OPS_TOKEN:
                raise ValueError("OPS_API_TOKEN must be set in production")
            if self.admin_password.get_secret_value() == DEMO_ADMIN_PASSWORD:
                raise ValueError("ADMIN_PASSWORD must be set in production")
            if self.session_secret.get_secret_value() == DEMO_SESSION_SECRET:
                raise ValueError("SESSION_SECRET must be set in production")
        return self


@lru_cache
def get_settings() -> SyncCoreSettings:
    return SyncCoreSettings()
