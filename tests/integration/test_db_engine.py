"""shared.db engines on the real PostgreSQL: TCP keepalives so a half-open connection is found dead."""

from __future__ import annotations

import pytest

from shared.db import create_engine, pg_connect_args
from tests.conftest import PG_URL

needs_pg = pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL not set")


def test_keepalive_defaults_yield_to_what_the_url_sets() -> None:
    args = pg_connect_args("postgresql+psycopg://u@db:5432/x?keepalives_idle=5&tcp_user_timeout=0")
    assert "keepalives_idle" not in args and "tcp_user_timeout" not in args
    assert args == {"keepalives": 1, "keepalives_interval": 10, "keepalives_count": 3}


@needs_pg
@pytest.mark.parametrize(
    ("query", "idle"),
    [("", "30"), ("?keepalives_idle=7", "7")],
)
async def test_postgres_connections_carry_tcp_keepalives(query: str, idle: str) -> None:
    """The libpq parameters the server connection was opened with (psycopg's `info.get_parameters`)."""
    engine = create_engine(PG_URL.split("?")[0] + query)
    try:
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            params = raw.driver_connection.info.get_parameters()  # type: ignore[union-attr]
    finally:
        await engine.dispose()
    assert params.get("keepalives_idle") == idle
    assert params.get("keepalives") == "1"
    assert params.get("tcp_user_timeout") == "60000"
