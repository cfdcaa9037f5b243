"""Chrono counters moved past every chrono of their numbering already taken (R03).

Numbering no longer reads the activities to skip a number an import took: a chrono given by a
client now moves its counter past it as it is written. This brings counters of an existing
database to that state once.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from erp_connector.models import chrono_number

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

counters = sa.table("erp_chrono_counter", sa.column("prefix", sa.String), sa.column("last", sa.Integer))
activities = sa.table("erp_activity", sa.column("chrono", sa.String))


def upgrade() -> None:
    bind = op.get_bind()
    for prefix, last in bind.execute(sa.select(counters.c.prefix, counters.c.last)).all():
        taken = bind.execute(sa.select(activities.c.chrono).where(activities.c.chrono.like(f"{prefix}%"))).scalars()
        highest = max((n for n in (chrono_number(prefix, c) for c in taken) if n is not None), default=0)
        if highest > last:
            bind.execute(sa.update(counters).where(counters.c.prefix == prefix).values(last=highest))


def downgrade() -> None:
    """Nothing to undo: a counter past its taken chronos is valid for the numbering before 0003 too."""
