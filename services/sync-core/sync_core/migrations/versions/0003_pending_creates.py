"""pending creates: ERP creates whose answer was lost

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 10:25:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sync_pending_create",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("collection", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("graph_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("erp_collection", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sync_pending_create", schema=None) as batch_op:
        batch_op.create_index("ix_sync_pending_create_item", ["user", "collection", "graph_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sync_pending_create", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_pending_create_item")
    op.drop_table("sync_pending_create")
