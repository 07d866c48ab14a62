"""deliverability: suppressions, delivery events, feedback rejections, send-rate buckets,
schedules, double opt-in, consent-gated tracking

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 02:03:09.205400
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import contacthub.storage.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "feedback_rejections",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=50), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column(
            "created_at", contacthub.storage.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_rejections")),
    )
    with op.batch_alter_table("feedback_rejections", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_feedback_rejections_created_at"), ["created_at"], unique=False
        )

    op.create_table(
        "webhook_tokens",
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("token", sa.String(length=200), nullable=False),
        sa.Column("seen_at", contacthub.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider", "token", name=op.f("pk_webhook_tokens")),
    )
    with op.batch_alter_table("webhook_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_tokens_seen_at"), ["seen_at"], unique=False)

    op.create_table(
        "send_rate_buckets",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_send_rate_buckets")),
    )
    op.create_table(
        "delivery_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status_code", sa.String(length=20), nullable=True),
        sa.Column("diagnostic", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column(
            "occurred_at", contacthub.storage.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "created_at", contacthub.storage.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_delivery_events_delivery_id_deliveries"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["email_issues.id"],
            name=op.f("fk_delivery_events_issue_id_email_issues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_events")),
        sa.UniqueConstraint("source", "event_id", name=op.f("uq_delivery_events_source")),
    )
    with op.batch_alter_table("delivery_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_delivery_events_delivery_id"), ["delivery_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_delivery_events_email"), ["email", "kind", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_delivery_events_issue_id"), ["issue_id", "kind"], unique=False
        )

    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("delivery_id", sa.BigInteger(), nullable=True),
        sa.Column("created_by", sa.String(length=254), nullable=True),
        sa.Column(
            "created_at", contacthub.storage.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_suppressions_delivery_id_deliveries"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint("email", name=op.f("uq_suppressions_email")),
    )
    with op.batch_alter_table("consent_agreements", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ip", sa.String(length=45), nullable=True))
        batch_op.add_column(sa.Column("user_agent", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("evidence", sa.Text(), nullable=True))

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "next_attempt_at",
                contacthub.storage.types.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column("tracked", sa.Boolean(), nullable=False, server_default=sa.true())
        )

    with op.batch_alter_table("email_issues", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "scheduled_at", contacthub.storage.types.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("scheduled_by", sa.String(length=254), nullable=True))

    with op.batch_alter_table("newsletters", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("double_opt_in", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("consent_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("tracking_consent_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_newsletters_consent_id_consents"),
            "consents",
            ["consent_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_newsletters_tracking_consent_id_consents"),
            "consents",
            ["tracking_consent_id"],
            ["id"],
            ondelete="SET NULL",
        )

    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "confirmation_sent_at",
                contacthub.storage.types.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column(
                "confirmed_at", contacthub.storage.types.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("confirmation_agreement_id", sa.BigInteger(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_subscribers_confirmation_agreement_id_consent_agreements"),
            "consent_agreements",
            ["confirmation_agreement_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:

    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_subscribers_confirmation_agreement_id_consent_agreements"),
            type_="foreignkey",
        )
        batch_op.drop_column("confirmation_agreement_id")
        batch_op.drop_column("confirmed_at")
        batch_op.drop_column("confirmation_sent_at")

    with op.batch_alter_table("newsletters", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_newsletters_tracking_consent_id_consents"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_newsletters_consent_id_consents"), type_="foreignkey"
        )
        batch_op.drop_column("tracking_consent_id")
        batch_op.drop_column("consent_id")
        batch_op.drop_column("double_opt_in")

    with op.batch_alter_table("email_issues", schema=None) as batch_op:
        batch_op.drop_column("scheduled_by")
        batch_op.drop_column("scheduled_at")

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("tracked")
        batch_op.drop_column("next_attempt_at")

    with op.batch_alter_table("consent_agreements", schema=None) as batch_op:
        batch_op.drop_column("evidence")
        batch_op.drop_column("user_agent")
        batch_op.drop_column("ip")

    op.drop_table("suppressions")
    with op.batch_alter_table("delivery_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_events_issue_id"))
        batch_op.drop_index(batch_op.f("ix_delivery_events_email"))
        batch_op.drop_index(batch_op.f("ix_delivery_events_delivery_id"))

    op.drop_table("delivery_events")
    op.drop_table("send_rate_buckets")
    with op.batch_alter_table("webhook_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_tokens_seen_at"))

    op.drop_table("webhook_tokens")
    with op.batch_alter_table("feedback_rejections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_rejections_created_at"))

    op.drop_table("feedback_rejections")
