""".env.example documents every setting of every service, with a value each service accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
from dotenv import dotenv_values
from pydantic_settings import BaseSettings

from erp_connector.settings import ErpConnectorSettings
from graph_webhook.settings import GraphWebhookSettings
from shared.settings import CommonSettings, GraphSettings
from sync_core.settings import SyncCoreSettings

EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
SERVICES: list[type[BaseSettings]] = [
    CommonSettings,
    GraphSettings,
    ErpConnectorSettings,
    GraphWebhookSettings,
    SyncCoreSettings,
]


def _env_name(cls: type[BaseSettings], name: str) -> str:
    field = cls.model_fields[name]
    alias = field.validation_alias or field.alias
    return (alias if isinstance(alias, str) else name).upper()


@pytest.mark.parametrize("cls", SERVICES, ids=lambda c: c.__name__)
def test_env_example_lists_every_setting(cls: type[BaseSettings]) -> None:
    documented = set(dotenv_values(EXAMPLE))
    missing = sorted(_env_name(cls, n) for n in cls.model_fields if _env_name(cls, n) not in documented)
    assert not missing, f"add to .env.example: {missing}"


@pytest.mark.parametrize("cls", SERVICES, ids=lambda c: c.__name__)
def test_env_example_values_are_accepted(cls: type[BaseSettings], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in dotenv_values(EXAMPLE).items():
        monkeypatch.setenv(key, value or "")
    settings = cls(_env_file=None)  # type: ignore[call-arg]
    assert settings is not None


def test_docker_compose_uses_only_documented_settings() -> None:
    import yaml

    compose = yaml.safe_load((EXAMPLE.parent / "docker-compose.yml").read_text())
    documented = set(dotenv_values(EXAMPLE))
    ours = {"graph-sim", "erp-connector", "graph-webhook", "sync-core"}
    used = {key for name, svc in compose["services"].items() if name in ours for key in svc["environment"]}
    assert used, "the compose file must configure our services"
    assert not sorted(used - documented), f"undocumented in .env.example: {sorted(used - documented)}"
