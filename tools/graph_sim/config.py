"""Simulator settings (environment variables, demo defaults)."""

from __future__ import annotations

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_ROLES = [
    "User.Read.All",
    "Calendars.ReadWrite",
    "Contacts.ReadWrite",
    "Tasks.ReadWrite.All",
    "MailboxSettings.Read",
]


class RegisteredApp(BaseModel):
    """An app registration that may obtain tokens with the client-credentials grant."""

    tenant_id: str
    client_id: str
    client_secret: str
    display_name: str = "outlook-erp-sync"
    roles: list[str] = Field(default_factory=lambda: list(DEFAULT_ROLES))


class SimConfig(BaseSettings):
    """Everything the simulator reads from the environment."""

    model_config = SettingsConfigDict(env_prefix="GRAPH_SIM_", env_file=None, extra="ignore", populate_by_name=True)

    tenant_id: str = Field("00000000-0000-0000-0000-0000000000aa", alias="GRAPH_TENANT_ID")
    client_id: str = Field("11111111-1111-1111-1111-111111111111", alias="GRAPH_CLIENT_ID")
    client_secret: str = Field("demo-secret-change-me", alias="GRAPH_CLIENT_SECRET")
    host: str = Field("127.0.0.1", alias="GRAPH_SIM_HOST")
    port: int = Field(8010, alias="GRAPH_SIM_PORT")
    ca_path: str = Field("var/graph-sim/ca.pem", alias="GRAPH_SIM_CA_PATH")
    # Graph always throttles; the model is off by default so benchmarks measure the product, and fault
    # tests switch it on through POST /_sim/faults (or GRAPH_SIM_THROTTLING=1).
    throttling: bool = Field(False, alias="GRAPH_SIM_THROTTLING")
    extra_apps: list[RegisteredApp] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=lambda: list(DEFAULT_ROLES))
    token_lifetime_seconds: int = 3599
    # Webhook delivery (change-notifications-delivery-webhooks.md): 3 s timeout, retried with back-off.
    delivery_timeout_seconds: float = 3.0
    delivery_max_attempts: int = 5
    delivery_backoff_seconds: float = 0.2
    notification_batch_max: int = 50
    notification_batch_window_seconds: float = 0.01
    # Delivery attempts kept for GET /_sim/notifications (benchmarks raise it to time every change).
    notification_history_size: int = 1000
    # On permanent delivery failure, tell the subscriber through a `missed` lifecycle notification.
    missed_on_delivery_failure: bool = True
    handshake_timeout_seconds: float = 10.0
    # reauthorizationRequired goes out when the remaining lifetime is below this, or below a quarter of
    # the lifetime granted at the last create/renew, whichever is shorter.
    reauthorization_lead_minutes: float = 60.0
    lifecycle_tick_seconds: float = 0.5
    default_page_size: int = 10
    delta_page_size: int = 10
    # CA bundle used to verify https notification targets; without it only loopback https is allowed.
    notification_ca_bundle: str | None = None

    def apps(self) -> list[RegisteredApp]:
        """All registered apps: the one from the environment first."""
        main = RegisteredApp(
            tenant_id=self.tenant_id,
            client_id=self.client_id,
            client_secret=self.client_secret,
            roles=list(self.roles),
        )
        return [main, *self.extra_apps]
