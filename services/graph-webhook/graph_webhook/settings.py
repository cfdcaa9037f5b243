"""graph-webhook settings, from the environment (`WEBHOOK_PUBLIC_URL`, `ERP_CONNECTOR_URL`, …)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import ENV_FILE, CommonSettings, GraphSettings

DEMO_ERP_API_TOKEN = "demo-erp-token"
# Outlook resources (events, contacts, To Do tasks) accept subscriptions of at most 4,230 minutes
# (https://learn.microsoft.com/graph/api/resources/subscription#subscription-lifetime).
MAX_LIFETIME_MINUTES = 4230
ONE_MIB = 1024 * 1024


class GraphWebhookSettings(CommonSettings, GraphSettings):
    """What graph-webhook needs on top of the common and Graph settings."""

    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore", populate_by_name=True)

    webhook_database_url: str = "sqlite:///var/webhook.db"
    # Where Graph reaches this service: public HTTPS in production, loopback for the simulator.
    webhook_public_url: str = "http://127.0.0.1:8001"
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 8001
    # Processes serving notifications; each has its own broker connection and subscription cache,
    # and the database lease keeps their subscription managers from overlapping.
    webhook_workers: int = 1
    erp_connector_url: str = "http://127.0.0.1:8002"
    erp_api_token: SecretStr = SecretStr(DEMO_ERP_API_TOKEN)
    erp_timeout_s: float = 10.0
    # Bearer token of the read-only status API (`GET /api/v1/subscriptions`): the ops API's token,
    # so sync-core's console can show subscription status (docs/operations.md).
    ops_api_token: SecretStr = SecretStr("demo-ops-token")
    auto_migrate: bool = True
    # Subscriptions: longest lifetime Graph allows, renewed once less than this fraction is left.
    subscription_lifetime_minutes: int = MAX_LIFETIME_MINUTES
    subscription_renew_fraction: float = 0.25
    # Full reconcile against the ERP's user list; the cheaper expiry/repair check runs more often.
    subscription_reconcile_interval_s: float = 300.0
    subscription_check_interval_s: float = 60.0
    subscription_parallelism: int = 8
    subscriptions_enabled: bool = True
    lease_ttl_s: float = 120.0
    # Graph wants a reply within 3 s (change-notifications-delivery-webhooks.md): a publish that is
    # not confirmed by then is answered 503 so that Graph redelivers.
    publish_timeout_s: float = 2.5
    notification_max_body_bytes: int = ONE_MIB
    last_notification_flush_s: float = 10.0
    subscription_cache_refresh_s: float = 30.0
    broker_retry_s: float = 2.0

    @property
    def notification_url(self) -> str:
        return f"{self.webhook_public_url.rstrip('/')}/notifications"

    @property
    def lifecycle_url(self) -> str:
        return f"{self.webhook_public_url.rstrip('/')}/lifecycle"

    @model_validator(mode="after")
    def _check(self) -> GraphWebhookSettings:
        if not 1 <= self.subscription_lifetime_minutes <= MAX_LIFETIME_MINUTES:
            raise ValueError(f"SUBSCRIPTION_LIFETIME_MINUTES must be between 1 and {MAX_LIFETIME_MINUTES}")
        if not 0 < self.subscription_renew_fraction < 1:
            raise ValueError("SUBSCRIPTION_RENEW_FRACTION must be between 0 and 1")
        if self.environment == "production":
            if not self.webhook_public_url.startswith("https://"):
                raise ValueError("WEBHOOK_PUBLIC_URL must be https in production: Graph only calls HTTPS endpoints")
            if self.erp_api_token.get_secret_value() == DEMO_ERP_API_TOKEN:
                raise ValueError("ERP_API_TOKEN must be set in production (the demo token is refused)")
        return self


@lru_cache
def get_settings() -> GraphWebhookSettings:
    return GraphWebhookSettings()
