"""contact rollups: new contacts per UTC day, and the rollups' contact cursor

The dashboard's new contacts per day come from `contact_rollups` (contacts per UTC day of
`created_at`, counted by the rollup job) plus the contacts after `rollup_state.last_contact_id`,
counted live (contacthub/analytics/rollups.py). Nothing is counted here: the cursor starts at 0,
so until the job's first run every contact is counted live, exactly as before, and the job then
counts the existing contacts in its chunks.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 22:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contact_rollups",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_contact_rollups")),
    )
    # The server default fills the one existing state row (nothing counted yet); the models
    # give the value themselves.
    with op.batch_alter_table("rollup_state", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("last_contact_id", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("rollup_state", schema=None) as batch_op:
        batch_op.drop_column("last_contact_id")
    op.drop_table("contact_rollups")
