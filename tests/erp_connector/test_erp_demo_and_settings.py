"""Demo data through the API, settings that refuse demo secrets in production, migrations."""

from __future__ import annotations

import pytest
from alembic import command
from erp_support import TOKEN, Running
from pydantic import ValidationError
from sqlalchemy import update
from sqlmodel import select

from erp_connector.app import MIGRATIONS, VERSION_TABLE, migrate
from erp_connector.database import Database
from erp_connector.demo import load_demo
from erp_connector.models import ChronoCounter
from erp_connector.schemas import ActivityCreate, RepresentativeCreate
from erp_connector.settings import DEMO_API_TOKEN, ErpConnectorSettings
from erp_connector.unit_of_work import UnitOfWork, WriteRequest
from shared.migrations import alembic_config


async def test_demo_data_loads_through_the_api_and_twice_is_once(erp: Running) -> None:
    await load_demo(erp.url, TOKEN)
    await load_demo(erp.url, TOKEN)
    ana = (await erp.client.get("/api/v1/representatives/REP01")).json()
    assert (ana["name"], ana["email"], ana["sales_role"], ana["sync_enabled"]) == (
        "Ana Silva",
        "ana.silva@contoso.example",
        True,
        True,
    )
    assert all(ana[s] for s in ("sync_meetings", "sync_tasks", "sync_calls", "sync_contacts", "contacts_two_way"))
    reps = (await erp.client.get("/api/v1/representatives")).json()["items"]
    assert [r["sales_role"] for r in reps] == [True, False]
    partners = (await erp.client.get("/api/v1/partners")).json()["items"]
    assert sorted(p["type"] for p in partners).count("customer") == 3
    assert (await erp.client.get("/api/v1/partners/ACME")).json()["domains"] == ["acme.example"]
    assert (await erp.client.get("/api/v1/contacts")).json()["total"] == 4


def test_production_refuses_the_demo_token_and_secret() -> None:
    with pytest.raises(ValidationError, match="ERP_API_TOKEN"):
        ErpConnectorSettings(environment="production")
    with pytest.raises(ValidationError, match="ERP_WEBHOOK_SECRET"):
        ErpConnectorSettings(environment="production", erp_api_token="a-real-token")  # type: ignore[arg-type]
    assert ErpConnectorSettings().erp_api_token.get_secret_value() == DEMO_API_TOKEN


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERP_DATABASE_URL", "sqlite:///elsewhere.db")
    monkeypatch.setenv("ERP_REFUSE_OVERLAPS", "false")
    monkeypatch.setenv("ERP_CONNECTOR_PORT", "9002")
    settings = ErpConnectorSettings()
    assert (settings.erp_database_url, settings.erp_refuse_overlaps, settings.erp_connector_port) == (
        "sqlite:///elsewhere.db",
        False,
        9002,
    )


def test_migrations_are_idempotent(database_url: str) -> None:
    migrate(database_url)
    migrate(database_url)


async def test_migration_0003_moves_counters_past_the_chronos_already_taken_R03(database_url: str) -> None:
    """A database numbered before 0003 may hold imported chronos past its counter; 0003 moves the
    counter past them once, so numbering (which no longer reads the activities) never repeats one."""
    migrate(database_url)
    db = Database(database_url)
    uow = UnitOfWork(db)
    try:
        rep = RepresentativeCreate(code="REP01", name="R", email="rep01@contoso.example", sales_role=True)
        await uow.write(WriteRequest(), lambda erp: erp.create_representative(rep))
        for chrono in ("CLL000007", "CLL000042", "CLL0000099"):
            data = ActivityCreate(kind="call", chrono=chrono, representative="REP01")
            await uow.write(WriteRequest(), lambda erp, d=data: erp.create_activity(d))
        async with db.write() as session:  # as a database written before 0003 could be
            await session.exec(update(ChronoCounter).values(last=3))  # type: ignore[call-overload]
        command.downgrade(alembic_config(database_url, MIGRATIONS, VERSION_TABLE), "0002")
        migrate(database_url)
        async with db.read() as session:
            counters = dict((await session.exec(select(ChronoCounter.prefix, ChronoCounter.last))).all())
        assert counters == {"CLL": 42, "MTG": 3, "TSK": 3}
        made = await uow.write(
            WriteRequest(), lambda erp: erp.create_activity(ActivityCreate(kind="call", representative="REP01"))
        )
        assert made.body["chrono"] == "CLL000043"
    finally:
        await db.dispose()
