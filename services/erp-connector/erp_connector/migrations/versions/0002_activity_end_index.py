"""Index a representative's activities by end, for the overlap check (R15).

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_erp_activity_owner_kind_end", "erp_activity", ["representative", "kind", "end"])


def downgrade() -> None:
    op.drop_index("ix_erp_activity_owner_kind_end", table_name="erp_activity")
