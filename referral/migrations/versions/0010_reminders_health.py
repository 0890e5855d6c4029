"""reminders and directory health: weekly listing digests and their one-click links,
unanswered-referral reminders, the daily jobs' runs, and the index of the health figures

Revision ID: 0010_reminders_health
Revises: 0009_listing_reports
"""
import sqlalchemy as sa
from alembic import op

revision = "0010_reminders_health"
down_revision = "0009_listing_reports"
branch_labels = None
depends_on = None

EVENT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.create_table(
        "reminder_digest",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("event_id", EVENT_ID, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinic.id"], ondelete="CASCADE",
                                name=op.f("fk_reminder_digest_clinic_id_clinic")),
        sa.ForeignKeyConstraint(["event_id"], ["event.id"], ondelete="SET NULL",
                                name=op.f("fk_reminder_digest_event_id_event")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminder_digest")),
    )
    op.create_index("uq_reminder_digest_clinic_period", "reminder_digest",
                    ["clinic_id", "period"], unique=True)
    op.create_table(
        "listing_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest_id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("stale", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["digest_id"], ["reminder_digest.id"], ondelete="CASCADE",
                                name=op.f("fk_listing_link_digest_id_reminder_digest")),
        sa.ForeignKeyConstraint(["provider_id"], ["provider.id"], ondelete="CASCADE",
                                name=op.f("fk_listing_link_provider_id_provider")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_listing_link")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_listing_link_key_hash")),
    )
    op.create_index(op.f("ix_listing_link_digest_id"), "listing_link", ["digest_id"])
    op.create_index(op.f("ix_listing_link_provider_id"), "listing_link", ["provider_id"])
    op.create_table(
        "referral_reminder",
        sa.Column("referral_id", sa.Integer(), nullable=False),
        sa.Column("event_id", EVENT_ID, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["referral_id"], ["referral.id"], ondelete="CASCADE",
                                name=op.f("fk_referral_reminder_referral_id_referral")),
        sa.ForeignKeyConstraint(["event_id"], ["event.id"], ondelete="SET NULL",
                                name=op.f("fk_referral_reminder_event_id_event")),
        sa.PrimaryKeyConstraint("referral_id", name=op.f("pk_referral_reminder")),
    )
    op.create_table(
        "daily_run",
        sa.Column("job", sa.String(length=40), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("worker", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("job", "day", name=op.f("pk_daily_run")),
    )


    # the directory-health figures: an index-only scan of the listings kept by clinics
    with op.batch_alter_table("provider") as batch:
        batch.create_index("ix_provider_health", ["state", "clinic_id", "last_verified_at",
                                                  "reported_at", "accepting_new_patients",
                                                  "id"],
                           sqlite_where=sa.text("active IS 1 AND clinic_id IS NOT NULL"),
                           postgresql_where=sa.text("active IS true AND clinic_id IS NOT NULL"))


def downgrade():
    with op.batch_alter_table("provider") as batch:
        batch.drop_index("ix_provider_health")
    op.drop_table("daily_run")
    op.drop_table("referral_reminder")
    op.drop_index(op.f("ix_listing_link_provider_id"), table_name="listing_link")
    op.drop_index(op.f("ix_listing_link_digest_id"), table_name="listing_link")
    op.drop_table("listing_link")
    op.drop_index("uq_reminder_digest_clinic_period", table_name="reminder_digest")
    op.drop_table("reminder_digest")
