"""sync-core's database: engine, sessions, migrations."""

from __future__ import annotations

from pathlib import Path

from shared.migrations import upgrade

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_sync"


def migrate(url: str) -> None:
    upgrade(url, MIGRATIONS, VERSION_TABLE)
