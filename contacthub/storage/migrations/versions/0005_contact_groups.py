"""contact groups: groups, members, membership history, live job state; issues sent to a group

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 22:55:49.303190
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import contacthub.storage.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contact_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guid", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("conditions", sa.Text(), nullable=True),
        sa.Column(
            "created_at", contacthub.storage.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "updated_at", contacthub.storage.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("rebuilt_at", contacthub.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_groups")),
        sa.UniqueConstraint("guid", name=op.f("uq_contact_groups_guid")),
        sa.UniqueConstraint("name", name=op.f("uq_contact_groups_name")),
    )
    op.create_table(
        "group_membership_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_activity_id", sa.BigInteger(), nullable=False),
        sa.Column("last_email_open_id", sa.BigInteger(), nullable=False),
        sa.Column("last_email_click_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "evaluated_at", contacthub.storage.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_membership_state")),
    )
    op.create_table(
        "group_pending_contacts",
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("queued_at", contacthub.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("contact_id", name=op.f("pk_group_pending_contacts")),
    )
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("since", contacthub.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_group_members_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["contact_groups.id"],
            name=op.f("fk_group_members_group_id_contact_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "contact_id", name=op.f("pk_group_members")),
    )
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_group_members_contact_id"), ["contact_id"], unique=False
        )

    op.create_table(
        "group_membership_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("entered", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at", contacthub.storage.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_group_membership_events_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["contact_groups.id"],
            name=op.f("fk_group_membership_events_group_id_contact_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_membership_events")),
    )
    with op.batch_alter_table("group_membership_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_group_membership_events_contact_id"), ["contact_id", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_group_membership_events_group_id"), ["group_id", "id"], unique=False
        )

    with op.batch_alter_table("email_issues", schema=None) as batch_op:
        batch_op.add_column(sa.Column("group_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("group_name", sa.String(length=100), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_email_issues_group_id_contact_groups"),
            "contact_groups",
            ["group_id"],
            ["id"],
            ondelete="SET NULL",
        )

    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subscribers_contact_id"), ["contact_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscribers_contact_id"))

    with op.batch_alter_table("email_issues", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_email_issues_group_id_contact_groups"), type_="foreignkey"
        )
        batch_op.drop_column("group_name")
        batch_op.drop_column("group_id")

    with op.batch_alter_table("group_membership_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_group_membership_events_group_id"))
        batch_op.drop_index(batch_op.f("ix_group_membership_events_contact_id"))

    op.drop_table("group_membership_events")
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_group_members_contact_id"))

    op.drop_table("group_members")
    op.drop_table("group_pending_contacts")
    op.drop_table("group_membership_state")
    op.drop_table("contact_groups")
