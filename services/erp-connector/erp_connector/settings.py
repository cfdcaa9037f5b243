"""erp-connector settings, from the environment (`ERP_API_TOKEN`, `ERP_DATABASE_URL`, …)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import ENV_FILE, CommonSettings

DEMO_API_TOKEN = "demo-erp-token"
# A valid Standard Webhooks secret (base64 of 32 bytes), for development only.
DEMO_WEBHOOK_SECRET = "whsec_ZGVtby1lcnAtd2ViaG9vay1zZWNyZXQtMzJieXRlcyE="


class ErpConnectorSettings(CommonSettings):
    """What erp-connector needs on top of the common settings."""

    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore", populate_by_name=True)

    erp_database_url: str = "sqlite:///var/erp.db"
    erp_api_token: SecretStr = SecretStr(DEMO_API_TOKEN)
    erp_webhook_secret: SecretStr = SecretStr(DEMO_WEBHOOK_SECRET)
    # X3 lets the ERP refuse overlapping meetings of one representative (R15).
    erp_refuse_overlaps: bool = True
    erp_connector_host: str = "127.0.0.1"
    erp_connector_port: int = 8002
    auto_migrate: bool = True
    # The relay is woken right after each write; the interval only bounds the delay of rows
    # left behind by a broker outage or by another replica.
    erp_outbox_relay_interval_s: float = 1.0
    erp_outbox_batch_size: int = 200
    # Sent outbox rows, seen webhook ids and idempotency records are kept this long.
    erp_retention_hours: int = 72
    # Pause between attempts to (re)connect to the broker when it was down at start.
    erp_broker_retry_s: float = 2.0
    erp_webhook_max_body_bytes: int = 256 * 1024

    @model_validator(mode="after")
    def _refuse_demo_secrets_in_production(self) -> ErpConnectorSettings:
        if self.environment == "production":
            if self.erp_api_token.get_secret_value() == DEMO_API_TOKEN:
                raise ValueError("ERP_API_TOKEN must be set in production (the demo token is refused)")
            if self.erp_webhook_secret.get_secret_value() == DEMO_WEBHOOK_SECRET:
                raise ValueError("ERP_WEBHOOK_SECRET must be set in production (the demo secret is refused)")
        return self


@lru_cache
def get_settings() -> ErpConnectorSettings:
    return ErpConnectorSettings()
