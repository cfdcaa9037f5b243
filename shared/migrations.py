"""Alembic, driven from code: each service keeps its own migrations and version table."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, engine_from_config, pool

from shared.db import ensure_sqlite_dir, sync_url


def alembic_config(url: str, script_location: str | Path, version_table: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    cfg.attributes["version_table"] = version_table
    return cfg


# Alembic's migration context is process-global: services sharing a process (tests) take turns.
_lock = threading.Lock()


def upgrade(url: str, script_location: str | Path, version_table: str) -> None:
    """Apply every migration of one service to `url` (idempotent)."""
    ensure_sqlite_dir(url)
    with _lock:
        command.upgrade(alembic_config(url, script_location, version_table), "head")


def run_env(metadata: MetaData) -> None:
    """Body of a service's migrations/env.py: online migrations on the configured URL."""
    from alembic import context

    cfg = context.config
    version_table = cfg.attributes.get("version_table", "alembic_version")
    connectable = engine_from_config(
        cfg.get_section(cfg.config_ini_section) or {"sqlalchemy.url": cfg.get_main_option("sqlalchemy.url")},
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table=version_table,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
